"""Write one test set's CSV (the held-out split part or an external dataset's index)."""

from ganaug.datasets import read_index
from ganaug.io import write_csv
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
table = read_index(sm.input.source)
write_csv(sm.output.csv, table)
log.info("%s: %d images (%d melanoma)", sm.wildcards.test_set, len(table), int(table["label"].sum()))
