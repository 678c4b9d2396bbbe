"""Fine-tune one classifier (an experiment's replicate, or the ancillary one); resumes per epoch."""

import numpy as np
import pandas as pd

from ganaug.cache import load_cache, load_trainset_images
from ganaug.classifier.training import run_seed, train_classifier
from ganaug.io import seed_from
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, device = start_job(sm.log[0], sm.threads, device="auto")
cfg = dict(sm.params.cfg)
train_real = pd.read_csv(sm.input.train)
real_images = load_cache(sm.input.train_images)
if "trainset" in sm.input.keys():  # an experiment's replicate
    table = pd.read_csv(sm.input.trainset)
    images = load_trainset_images(table, (train_real, real_images), sm.params.cache_size)
    crn = sm.params.common_random_numbers
    seed = run_seed(sm.params.seed, sm.wildcards.experiment, int(sm.wildcards.rep), crn)
    sample_ids = table["image"].astype(str).tolist() if crn else None
else:  # the ancillary classifier: the whole real training split
    table, images = train_real, np.asarray(real_images)
    seed, sample_ids = seed_from(sm.params.seed, "classifier", "ancillary"), None
val = pd.read_csv(sm.input.val)
train_classifier(
    images,
    table["label"].to_numpy(np.int64),
    np.asarray(load_cache(sm.input.val_images)),
    val["label"].to_numpy(np.int64),
    cfg,
    sm.params.outdir,
    seed,
    device,
    log,
    code_version=sm.params.code,
    sample_ids=sample_ids,
)
