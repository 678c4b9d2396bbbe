"""Fine-tune classifiers: the replicates of an experiment the job was given (one after the other, each with
its own log), or the ancillary one; each resumes per epoch."""

import os

import numpy as np
import pandas as pd

from ganaug.cache import load_cache, load_trainset_images
from ganaug.classifier.training import run_seed, train_classifier
from ganaug.io import seed_from
from ganaug.progress import setup_logging, start_job

sm = snakemake  # noqa: F821
log, device = start_job(sm.log[0], sm.threads, device="auto")
cfg = dict(sm.params.cfg)
train_real = pd.read_csv(sm.input.train)
real_images = load_cache(sm.input.train_images)
val = pd.read_csv(sm.input.val)
val_images = np.asarray(load_cache(sm.input.val_images))
val_labels = val["label"].to_numpy(np.int64)


def train(table, images, out_dir, seed, sample_ids, log):
    train_classifier(images, table["label"].to_numpy(np.int64), val_images, val_labels, cfg, out_dir, seed,
                     device, log, code_version=sm.params.code, sample_ids=sample_ids)


if "trainsets" in sm.input.keys():  # an experiment's replicates
    crn = sm.params.common_random_numbers
    runs = zip(sm.params.replicates, sm.input.trainsets, sm.output.models, sm.log, strict=True)
    for i, (rep, trainset, model_path, log_path) in enumerate(runs):
        if i:
            log = setup_logging(log_path)
        table = pd.read_csv(trainset)
        images = load_trainset_images(table, (train_real, real_images), sm.params.cache_size)
        seed = run_seed(sm.params.seed, sm.wildcards.experiment, rep, crn)
        sample_ids = table["image"].astype(str).tolist() if crn else None
        train(table, images, os.path.dirname(model_path), seed, sample_ids, log)
else:  # the ancillary classifier: the whole real training split
    seed = seed_from(sm.params.seed, "classifier", "ancillary")
    train(train_real, np.asarray(real_images), sm.params.outdir, seed, None, log)
