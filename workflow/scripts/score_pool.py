"""Ancillary classifier's error on every pool image (for best / worst sampling); the pool manifest."""

from ganaug.pool import score_pool
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, device = start_job(sm.log[0], sm.threads, device="auto")
score_pool(sm.input.shards, sm.input.phash, sm.input.ancillary, sm.output.manifest, device=device, log=log)
