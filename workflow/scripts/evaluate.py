"""Predictions of one trained classifier on every test set (mean of TTA replicas)."""

import pandas as pd

from ganaug.cache import load_cache
from ganaug.classifier.predict import predict_proba
from ganaug.classifier.training import load_classifier
from ganaug.io import seed_from, write_csv
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, device = start_job(sm.log[0], sm.threads)
model, info = load_classifier(sm.input.model, device)
for test_set, csv, npy, out in zip(sm.params.test_sets, sm.input.csvs, sm.input.images, sm.output.predictions):
    table = pd.read_csv(csv)
    prob = predict_proba(
        model, info, load_cache(npy), device, tta=sm.params.tta, augment_cfg=dict(sm.params.augment),
        seed=seed_from(sm.params.seed, "tta", test_set),
    )
    write_csv(out, pd.DataFrame({"image": table["image"], "label": table["label"], "prob": prob}))
    log.info("%s: %d predictions", test_set, len(table))
