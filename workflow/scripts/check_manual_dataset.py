"""A hand-placed dataset (derm7pt, Dermofit): present and complete, or a message saying how to get it."""

from ganaug.io import write_json
from ganaug.progress import start_job
from ganaug.data.manual import check_manual_dataset

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
inventory = check_manual_dataset(sm.wildcards.dataset, sm.params.cfg)
log.info("%s: %s", sm.wildcards.dataset, inventory)
write_json(sm.output[0], inventory)
