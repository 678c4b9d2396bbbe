"""Decode every image of a dataset once; fail on (or drop and list) unreadable or truncated files."""

from ganaug.progress import start_job
from ganaug.data.integrity import check_index_images

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
check_index_images(
    sm.input.index, sm.output.index, sm.output.report, on_bad=sm.params.on_bad, workers=sm.threads, log=log
)
