"""One archive of a real dataset, verified and extracted safely into its folder."""

from ganaug.progress import start_job
from ganaug.data.sources import extract_source

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
extract_source(sm.params.spec, sm.output[0], log=log)
