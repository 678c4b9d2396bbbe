"""Train one GAN on the real training images (resumes from its last snapshot); with resources gpu = N > 1
as N data-parallel processes (torchrun; ganaug.gans.launch)."""

from ganaug.gans import require_implemented
from ganaug.gans.launch import train_job
from ganaug.io import seed_from
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
gan = sm.wildcards.gan
require_implemented(gan, key=f"gans.{gan}")
gpus = int(getattr(sm.resources, "gpu", 1) or 0)
log, device = start_job(sm.log[0], sm.threads, device="auto", gpus=gpus)  # takes `gpus` GPU slots
masks = dict(masks=sm.input.masks, mask_rows=sm.input.mask_rows) if "masks" in sm.input.keys() else {}
train_job(gan, sm.input.images, sm.input.csv, sm.params.outdir, dict(sm.params.cfg),
          seed_from(sm.params.seed, "gan", gan), sm.output.summary, device, log, **masks,
          gpus=gpus, threads=sm.threads, log_path=sm.log[0], code_version=sm.params.code)
