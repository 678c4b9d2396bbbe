"""FID of every snapshot; the study's rule picks one; a sample grid of the chosen snapshot."""

import os

import numpy as np
import pandas as pd

from ganaug.cache import load_cache
from ganaug.io import seed_from
from ganaug.masks import masked_training_data
from ganaug.progress import start_job
from ganaug.selection import select_checkpoint

sm = snakemake  # noqa: F821
log, device = start_job(sm.log[0], sm.threads, device="auto")
images = load_cache(sm.input.images)
labels = pd.read_csv(sm.input.csv)["label"].to_numpy(np.int64)
masks = None
if "masks" in sm.input.keys():
    images, labels, masks, _ = masked_training_data(images, sm.input.masks, sm.input.mask_rows)
select_checkpoint(
    snapshot_dir=os.path.dirname(sm.input.summary),
    real_images=images,
    real_labels=labels,
    real_masks=masks,
    ancillary_path=sm.input.ancillary,
    fid_cfg={**sm.params.fid, "cache_dir": "results/cache/weights"},
    seed=seed_from(sm.params.seed, "fid", sm.wildcards.gan),
    device=device,
    out_selected=sm.output.selected,
    out_fid=sm.output.fid,
    out_grid=sm.output.grid,
    log=log,
)
