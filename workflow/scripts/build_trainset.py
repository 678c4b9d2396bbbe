"""Train sets of an experiment's replicates (one, or all: replicates_per_job): its paired real subset plus the
experiment's samples."""

from ganaug.design import Experiment
from ganaug.progress import setup_logging, start_job
from ganaug.trainsets import build_trainset

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
experiment = Experiment.from_dict(sm.params.experiment)
for i, (rep, out_csv, log_path) in enumerate(zip(sm.params.replicates, sm.output.csvs, sm.log, strict=True)):
    if i:
        log = setup_logging(log_path)
    build_trainset(
        experiment,
        replicate=rep,
        train_csv=sm.input.train,
        synthetic_csv=sm.input.get("synthetic"),
        out_csv=out_csv,
        seed=sm.params.seed,
        log=log,
        real_csv=sm.input.get(f"real_list_{rep}"),
    )
