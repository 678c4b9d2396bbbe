"""One AUC per (experiment, replicate, test set) into results/auc.csv."""

from ganaug.analysis import aggregate
from ganaug.io import write_csv
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
runs = [(e, r, t, path) for (e, r, t), path in zip(sm.params.runs, sm.input.predictions)]
table = aggregate(runs, sm.params.experiments)
write_csv(sm.output.auc, table)
log.info("%d AUC values", len(table))
