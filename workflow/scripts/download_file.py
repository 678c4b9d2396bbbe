"""One public file of a real dataset: downloaded (or a local copy checked), verified by sha256."""

from ganaug.progress import start_job
from ganaug.data.sources import fetch_source

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
fetch_source(sm.params.spec, log=log)
