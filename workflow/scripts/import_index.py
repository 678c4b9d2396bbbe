"""Check a user's index CSV and copy it into results/data/prepared/ (then check_images decodes its images)."""

from ganaug.datasets import read_index
from ganaug.io import write_csv
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
index = read_index(sm.input.index)
index["dataset"] = sm.wildcards.dataset
write_csv(sm.output.index, index)
log.info("%s: %d images (%d melanoma)", sm.wildcards.dataset, len(index), int(index["label"].sum()))
