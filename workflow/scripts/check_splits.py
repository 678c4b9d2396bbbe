"""Counts per part and class; fails on any overlap between training and test data, and on counts other than
the study's (split.expected, testsets.<name>.expected)."""

from ganaug.progress import start_job
from ganaug.data.splits import check_split_files

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
parts = {"train": sm.input.train, "val": sm.input.val, "test": sm.input.test}
check_split_files(
    parts, sm.params.testsets, sm.params.reduced, sm.output.json, sm.output.csv, log=log, expected=sm.params.expected
)
