"""Train set of one experiment and replicate: its paired real subset plus the experiment's samples."""

from ganaug.design import Experiment
from ganaug.progress import start_job
from ganaug.trainsets import build_trainset

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
build_trainset(
    Experiment.from_dict(sm.params.experiment),
    replicate=int(sm.wildcards.rep),
    train_csv=sm.input.train,
    synthetic_csv=sm.input.get("synthetic"),
    out_csv=sm.output.csv,
    seed=sm.params.seed,
    log=log,
    real_csv=sm.input.get("real_list"),
)
