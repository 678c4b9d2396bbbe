"""Figure-2-style box plots per application and test set, significant differences marked."""

import os

import pandas as pd

from ganaug.analysis import plot_all
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
paths = plot_all(pd.read_csv(sm.input.auc), dict(sm.params.order), os.path.dirname(sm.output.figures[0]),
                 baselines=dict(sm.params.reference),
                 stats=pd.read_csv(sm.input.stats, keep_default_na=False, na_values=[""]))
log.info("%d figure files", len(paths))
