"""Predictions of every replicate of one experiment on every test set (mean of TTA replicas); each test
set's augmented replicas are made once and go through every replicate's model."""

import pandas as pd

from ganaug.cache import load_cache
from ganaug.classifier.predict import predict_proba_models
from ganaug.classifier.training import load_classifier
from ganaug.io import seed_from, write_csv
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, device = start_job(sm.log[0], sm.threads, device="auto")
test_sets = [(name, pd.read_csv(csv), load_cache(npy)) for name, csv, npy in
             zip(sm.params.test_sets, sm.input.csvs, sm.input.images)]
models = [load_classifier(path, device) for path in sm.input.models]
n_sets = len(test_sets)
for t, (name, table, images) in enumerate(test_sets):
    probs = predict_proba_models(models, images, device, tta=sm.params.tta, augment_cfg=dict(sm.params.augment),
                                 seed=seed_from(sm.params.seed, "tta", name))
    for r, (model_path, prob) in enumerate(zip(sm.input.models, probs, strict=True)):
        # outputs are ordered replicate-major, then test set
        write_csv(sm.output.predictions[r * n_sets + t],
                  pd.DataFrame({"image": table["image"], "label": table["label"], "prob": prob}))
        log.info("%s on %s: %d predictions", model_path, name, len(table))
