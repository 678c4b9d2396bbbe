"""FID, KID and precision / recall of an external pool against the real training images."""

import numpy as np
import pandas as pd

from ganaug.cache import load_cache
from ganaug.io import seed_from
from ganaug.pool import load_pool_images
from ganaug.progress import start_job
from ganaug.selection import evaluate_pool

sm = snakemake  # noqa: F821
log, device = start_job(sm.log[0], sm.threads, device="auto")
shards = pd.read_csv(sm.input.shards)
evaluate_pool(
    pool_images=load_pool_images(shards),
    pool_labels=shards["label"].to_numpy(np.int64),
    real_images=load_cache(sm.input.images),
    real_labels=pd.read_csv(sm.input.csv)["label"].to_numpy(np.int64),
    ancillary_path=sm.input.ancillary,
    fid_cfg={**sm.params.fid, "cache_dir": "results/cache/weights"},
    seed=seed_from(sm.params.seed, "fid", sm.wildcards.gan),
    device=device,
    out_selected=sm.output.selected,
    out_fid=sm.output.fid,
    out_grid=sm.output.grid,
    log=log,
)
