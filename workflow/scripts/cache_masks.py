"""Label maps of the images of a CSV that have one, resized (nearest) once into one uint8 array."""

from ganaug.masks import build_mask_cache
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
build_mask_cache(sm.input.csv, sm.output.npy, sm.output.rows, int(sm.wildcards.size), log=log, workers=sm.threads)
