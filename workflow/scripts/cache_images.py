"""Decode and resize every image of a CSV once into one uint8 array."""

from ganaug.cache import build_cache
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
build_cache(sm.input.csv, sm.output.npy, int(sm.wildcards.size), log=log, workers=sm.threads)
