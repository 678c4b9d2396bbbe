"""ISIC 2018 Task 1/2 masks -> label-map PNGs of the ISIC 2019 images that have them."""

from ganaug.progress import start_job
from ganaug.data.label_maps import write_label_maps

sm = snakemake  # noqa: F821
log, _ = start_job(sm.log[0], sm.threads)
write_label_maps(
    sm.input.task1,
    sm.input.images,
    sm.params.outdir,
    sm.output.table,
    task2_dir=sm.input.task2,
    workers=sm.threads,
    log=log,
)
