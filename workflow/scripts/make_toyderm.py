"""Render one toyderm dataset (images + label maps) and write its index CSV."""

from ganaug.io import seed_from, write_csv
from ganaug.progress import start_job
from ganaug.toyderm import make_dataset

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
name = sm.wildcards.dataset
cfg = dict(sm.params.cfg)
cfg.pop("kind")
cfg["size"] = cfg.pop("image_size", 64)
seed = cfg.pop("seed", seed_from(sm.params.seed, "toyderm", name))
index = make_dataset(sm.params.outdir, name=name, seed=seed, **cfg)
write_csv(sm.output.index, index)
log.info("%s: %d images (%d melanoma)", name, len(index), int(index["label"].sum()))
