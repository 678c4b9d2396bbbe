"""Predictions of every replicate of one experiment on every test set (mean of TTA replicas)."""

import pandas as pd

from ganaug.cache import load_cache
from ganaug.classifier.predict import predict_proba
from ganaug.classifier.training import load_classifier
from ganaug.io import seed_from, write_csv
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, device = start_job(sm.log[0], sm.threads, device="auto")
test_sets = [(name, pd.read_csv(csv), load_cache(npy)) for name, csv, npy in
             zip(sm.params.test_sets, sm.input.csvs, sm.input.images)]
outputs = iter(sm.output.predictions)  # ordered replicate-major, then test set
for model_path in sm.input.models:
    model, info = load_classifier(model_path, device)
    for name, table, images in test_sets:
        prob = predict_proba(model, info, images, device, tta=sm.params.tta, augment_cfg=dict(sm.params.augment),
                             seed=seed_from(sm.params.seed, "tta", name))
        write_csv(next(outputs), pd.DataFrame({"image": table["image"], "label": table["label"], "prob": prob}))
        log.info("%s on %s: %d predictions", model_path, name, len(table))
