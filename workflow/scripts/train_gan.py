"""Train one GAN on the real training images (resumes from its last snapshot)."""

import numpy as np
import pandas as pd

from ganaug.cache import load_cache
from ganaug.gans import require_implemented
from ganaug.gans.training import train_gan
from ganaug.io import seed_from, write_json
from ganaug.masks import masked_training_data
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
gan = sm.wildcards.gan
require_implemented(gan, key=f"gans.{gan}")
log, device = start_job(sm.log[0], sm.threads, device="auto")
images = load_cache(sm.input.images, mmap=False)
labels = pd.read_csv(sm.input.csv)["label"].to_numpy(np.int64)
masks = None
if "masks" in sm.input.keys():
    images, labels, masks, _ = masked_training_data(images, sm.input.masks, sm.input.mask_rows)
summary = train_gan(gan, images, labels, sm.params.outdir, dict(sm.params.cfg), seed_from(sm.params.seed, "gan", gan),
                    device, log, masks=masks)
write_json(sm.output.summary, summary)
