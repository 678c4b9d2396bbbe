"""Generate the synthetic pool of one GAN from its selected snapshot, in resumable shards."""

from ganaug.io import seed_from
from ganaug.pool import generate_pool
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, device = start_job(sm.log[0], sm.threads, device="auto")
generate_pool(
    sm.input.selected,
    gan=sm.wildcards.gan,
    out_dir=sm.params.outdir,
    out_csv=sm.output.shards,
    seed=seed_from(sm.params.seed, "pool", sm.wildcards.gan),
    device=device,
    log=log,
    **sm.params.pool,
)
