"""One GAN training job from files: in this process, or as several data-parallel processes (torchrun).

`train_job(...)` is what the workflow's train_gan rule runs: with gpus <= 1 it trains in this process;
with gpus = N > 1 it starts N processes on this machine with
    python -m torch.distributed.run --standalone --nproc_per_node=N -m ganaug.gans.launch ARGS
(the same as `torchrun ...`; ganaug.gans.distributed.run_distributed) and waits for them. Each process
is one rank (one GPU) of the run: it loads the same data, joins the process group and calls train_gan,
which trains on batch / N images per rank and lets rank 0 write the snapshots, metrics.jsonl and the
summary JSON (see ganaug.gans.distributed for why the result equals the one-process run).

Command line (what run_distributed passes; it also works without torchrun, as one process):
    python -m ganaug.gans.launch --gan stylegan2 --images cache.npy --csv train.csv \
        [--masks masks.npy --mask-rows masks.csv] --outdir DIR --cfg '{"batch": 32}' --seed 123 \
        --summary DIR/training.json [--log-file job.log] [--device auto|cpu|cuda] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import numpy as np

from ganaug.io import InputError, write_json


def load_training_data(images_path, csv_path, masks_path=None, mask_rows_path=None):
    """(uint8 NHWC images, int64 labels, uint8 label maps or None) of a GAN's training set: the image
    cache and its CSV (column `label`), and for a translation GAN the mask cache and its row table."""
    import pandas as pd

    from ganaug.cache import load_cache
    from ganaug.masks import masked_training_data

    images = load_cache(images_path, mmap=False)
    table = pd.read_csv(csv_path)
    if "label" not in table.columns:
        raise InputError(f"{csv_path}: no 'label' column")
    labels = table["label"].to_numpy(np.int64)
    masks = None
    if masks_path is not None:
        images, labels, masks, _ = masked_training_data(images, masks_path, mask_rows_path)
    return images, labels, masks


# option names that are no prefix of a torchrun option (torchrun's parser would take them as its own)
def _args(gan, images, csv, outdir, cfg, seed, summary, device, log_path, masks, mask_rows, threads,
          code_version=None):
    args = ["--gan", gan, "--images", images, "--csv", csv, "--outdir", outdir, "--cfg", json.dumps(cfg),
            "--seed", int(seed), "--summary", summary, "--device", device, "--threads", int(threads)]
    if code_version is not None:
        args += ["--code-version", code_version]
    if log_path:
        args += ["--log-file", log_path]
    if masks is not None:
        args += ["--masks", masks, "--mask-rows", mask_rows]
    return [str(a) for a in args]


def train_job(gan: str, images, csv, outdir, cfg: dict, seed: int, summary, device, log: logging.Logger,
              masks=None, mask_rows=None, gpus: int = 1, threads: int = 1, log_path=None,
              code_version: str | None = None) -> dict:
    """Train GAN `gan` on the files' data into outdir (resuming) and write the summary JSON; `gpus` > 1:
    as that many processes (one per GPU; on a machine without CUDA, CPU processes with gloo).
    log_path: the file the processes append their log to (rank 0: all, the others: warnings)."""
    import torch

    from . import gan_module
    from .distributed import Context, run_distributed
    from .training import train_gan

    device = torch.device(device)
    gpus = int(gpus or 0)
    if gpus <= 1:
        images, labels, masks = load_training_data(images, csv, masks, mask_rows)
        out = train_gan(gan, images, labels, outdir, cfg, seed, device, log, masks=masks, restart_on_change=True,
                        code_version=code_version)
        write_json(summary, out)
        return out
    batch = gan_module(gan).resolve_config(dict(cfg))["batch"]
    Context(0, gpus).check_batch(batch, f"gans.{gan}.batch")  # before starting the processes
    if device.type == "cuda":
        if torch.cuda.device_count() < gpus:
            raise InputError(f"train_gan ({gan}): resources gpu = {gpus} but {torch.cuda.device_count()} "
                             f"CUDA device(s) are visible (CUDA_VISIBLE_DEVICES="
                             f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    else:
        log.warning(f"train_gan ({gan}): resources gpu = {gpus} on device {device}: {gpus} CPU processes "
                    "(gloo)")
    summary = Path(summary)
    summary.unlink(missing_ok=True)
    args = _args(gan, images, csv, outdir, cfg, seed, summary, device.type, log_path, masks, mask_rows,
                 max(1, int(threads) // gpus), code_version)
    for h in log.handlers:
        h.flush()
    run_distributed(gpus, args, threads=threads, log=log)
    if not summary.exists():
        raise RuntimeError(f"distributed training of {gan} ended without writing {summary}")
    return json.loads(summary.read_text())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ganaug.gans.launch", description=__doc__.split("\n")[0])
    p.add_argument("--gan", required=True)
    p.add_argument("--images", required=True, help="image cache (.npy, uint8 N x H x W x 3)")
    p.add_argument("--csv", required=True, help="the cache's table (column label)")
    p.add_argument("--masks", help="mask cache (.npy), translation GANs")
    p.add_argument("--mask-rows", help="the mask cache's row table (.csv)")
    p.add_argument("--outdir", required=True)
    p.add_argument("--cfg", default="{}", help="the GAN's config as JSON (batch: the global batch)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--summary", required=True, help="summary JSON, written by rank 0")
    p.add_argument("--log-file", help="log file (appended to)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, default=1, help="CPU threads of each process")
    p.add_argument("--code-version", help="the code's version: a run of another one is started over")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if (args.masks is None) != (args.mask_rows is None):
        raise SystemExit("--masks and --mask-rows go together")
    import torch

    from ganaug.progress import start_job

    from . import distributed
    from .training import train_gan

    try:
        cfg = json.loads(args.cfg)
    except json.JSONDecodeError as e:
        raise SystemExit(f"--cfg: not JSON ({e})")
    log, _ = start_job(args.log_file, args.threads, device="none")  # the log file gets any error
    torch.set_num_threads(max(1, args.threads))
    multi = int(os.environ.get("WORLD_SIZE", "1")) > 1
    ctx = distributed.init_from_env(args.device) if multi else None
    if ctx is not None:
        dev = ctx.device
        if not ctx.is_main:  # rank 0 reports progress; the others only what goes wrong
            log.setLevel(logging.WARNING)
        log.info(f"process group: {ctx.world} processes, backend {torch.distributed.get_backend()}, "
                 f"{torch.get_num_threads()} CPU thread(s) each")
    else:
        from ganaug.io import select_device

        dev = select_device(args.device)
    try:
        images, labels, masks = load_training_data(args.images, args.csv, args.masks, args.mask_rows)
        out = train_gan(args.gan, images, labels, args.outdir, cfg, args.seed, dev, log, masks=masks,
                        restart_on_change=True, code_version=args.code_version)
        if ctx is None or ctx.is_main:
            write_json(args.summary, out)
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
