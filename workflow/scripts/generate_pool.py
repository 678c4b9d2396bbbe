"""Generate the synthetic pool of one GAN from its selected snapshot, in resumable shards."""

from ganaug.io import seed_from
from ganaug.masks import load_mask_cache
from ganaug.pool import generate_pool
from ganaug.progress import start_job

sm = snakemake  # noqa: F821
log, device = start_job(sm.log[0], sm.threads, device="auto")
masks = mask_table = None
if "masks" in sm.input.keys():
    masks, mask_table = load_mask_cache(sm.input.masks, sm.input.mask_rows)
generate_pool(
    sm.input.selected,
    gan=sm.wildcards.gan,
    out_dir=sm.params.outdir,
    out_csv=sm.output.shards,
    seed=seed_from(sm.params.seed, "pool", sm.wildcards.gan),
    device=device,
    masks=masks,
    mask_table=mask_table,
    log=log,
    **sm.params.pool,
)
