"""Real datasets (ISIC 2019/2020, derm7pt, Dermofit): download or check, verify, index."""

from ganaug.datasets import fetch_real_dataset
from ganaug.io import write_csv
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
index = fetch_real_dataset(sm.wildcards.dataset, sm.params.cfg, log=log)
write_csv(sm.output.index, index)
