"""Draw the synthetic images of one experiment from the pool(s) (fixed across replicates)."""

from ganaug.design import Experiment
from ganaug.progress import start_job
from ganaug.trainsets import sample_experiment

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
sample_experiment(
    Experiment.from_dict(sm.params.experiment),
    train_csv=sm.input.train,
    manifests=list(sm.input.manifests),
    out_csv=sm.output.csv,
    seed=sm.params.seed,
    diverse_threshold=sm.params.sampling["diverse_threshold"],
    translation_images=sm.params.sampling["translation_images"],
    log=log,
)
