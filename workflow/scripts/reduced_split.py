"""One replicate's reduced real training set from the authors' published list."""

from ganaug.progress import start_job
from ganaug.data.sources import verify_sources
from ganaug.data.splits import write_reduced_list

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
verify_sources(sm.params.get("lists", {}), log=log)  # downloaded or `local` list files: their sha256
part = write_reduced_list(
    sm.input.train, sm.input.list, sm.output.csv, sm.wildcards.fraction, int(sm.wildcards.rep)
)
log.info(
    "reduced %s replicate %s: %d images (%d melanoma)",
    sm.wildcards.fraction,
    sm.wildcards.rep,
    len(part),
    int(part["label"].sum()),
)
