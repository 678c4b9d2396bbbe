"""Memorization audit of one GAN: nearest real training image of every synthetic image used in training."""

from ganaug.audit import memorization_audit
from ganaug.cache import load_cache
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, device = start_job(sm.log[0], sm.threads, device="auto")
memorization_audit(
    sm.wildcards.gan,
    samples_csvs=list(sm.input.samples),
    train_csv=sm.input.csv,
    train_images_gan=load_cache(sm.input.images_gan),
    train_images_cls=load_cache(sm.input.images_cls),
    cls_size=sm.params.cls_size,
    ancillary_path=sm.input.ancillary,
    out_dir=sm.params.outdir,
    thresholds={"hash": sm.params.cfg["hash_thresholds"], "cos": sm.params.cfg["cos_thresholds"]},
    n_pairs=sm.params.cfg["n_pairs"],
    device=device,
    log=log,
)
