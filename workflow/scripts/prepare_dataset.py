"""Preprocess one real dataset as the study did (filters, subset, duplicates) into an index CSV."""

from ganaug.progress import start_job
from ganaug.data.prepare import prepare_dataset
from ganaug.data.sources import verify_sources

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
verify_sources(sm.params.specs, log=log)
inputs = {k: v for k, v in sm.input.items()}
prepare_dataset(
    sm.wildcards.dataset,
    sm.params.cfg,
    inputs,
    sm.output.index,
    sm.output.report,
    seed=sm.params.seed,
    workers=sm.threads,
    log=log,
)
