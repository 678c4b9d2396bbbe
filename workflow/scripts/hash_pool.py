"""pHash of every pool image."""

from ganaug.pool import hash_pool
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
hash_pool(sm.input.shards, sm.output.phash, threads=sm.threads, log=log)
