"""Fine-tune one classifier (an experiment's replicate, or the ancillary one); resumes per epoch."""

import numpy as np
import pandas as pd

from ganaug.cache import load_cache, load_trainset_images
from ganaug.classifier.training import train_classifier
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
    name = (sm.wildcards.experiment, int(sm.wildcards.rep))
else:  # the ancillary classifier: the whole real training split
    table, images, name = train_real, np.asarray(real_images), ("ancillary",)
val = pd.read_csv(sm.input.val)
train_classifier(
    images,
    table["label"].to_numpy(np.int64),
    np.asarray(load_cache(sm.input.val_images)),
    val["label"].to_numpy(np.int64),
    cfg,
    sm.params.outdir,
    seed_from(sm.params.seed, "classifier", *name),
    device,
    log,
    code_version=sm.params.code,
)
