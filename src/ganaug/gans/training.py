"""Training and generation shared by the four GANs: one resumable loop, self-contained snapshots,
metrics.jsonl; loading a snapshot's generator and generating images from it.

A GAN module (ganaug.gans.<name>) provides FORMAT, CONDITIONING ("class" or "mask"), DEFAULTS,
RESUMABLE_CHANGES, resolve_config(cfg), Trainer(images, labels, masks, cfg, seed, device, log) and
build_generator(snapshot, ema). A Trainer has cur_nimg, step, seconds, N and train_step(),
state_dict(), load_state_dict(), metrics(), reset_stats(), describe(). Its generator has
`conditioning`, `resolution`, `num_classes`, `z_dim` (0: no latent) and
sample(z, c, label_map, truncation_psi) -> NCHW float image in [-1, 1].

Resume: `train_gan` on a directory with snapshots continues from the latest one (metrics lines beyond
it are dropped). On CPU a killed + resumed run is bit-identical to an uninterrupted one, also across
processes, provided the number of torch threads is the same (the thread count changes float
reduction order). On CUDA a resume restores the same state, but cuDNN and atomics make runs not
bitwise reproducible. Only the module's RESUMABLE_CHANGES (total_kimg, snapshot_kimg, num_threads) may
change between a run and its resume.

Several processes (torchrun, see ganaug.gans.distributed): every rank runs train_gan on the same data
and directory; `batch` is the global batch; rank 0 alone writes snapshots and metrics.jsonl. Snapshots
are the same as a one-process run's (up to float reduction order), so a run resumes with any number of
processes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from ganaug.io import InputError, append_jsonl, atomic_path, load_torch, save_torch
from ganaug.progress import Progress

from . import accel, distributed, gan_module, gan_of_format
from .snapshots import (
    list_snapshots,
    plain,
    snapshot_kimg,
    snapshot_name,
    snapshot_schedule,
    truncate_metrics,
)

TIMING_KEYS = ("sec_per_kimg", "img_per_s", "wall_time", "seconds")

__all__ = ["TIMING_KEYS", "generate", "list_snapshots", "load_generator", "load_snapshot", "sample_grid",
           "save_png", "snapshot_kimg", "snapshot_name", "snapshot_schedule", "train_gan"]


def _check_data(gan, images, labels, masks, cfg, conditioning):
    r = cfg["resolution"]
    key = f"gans.{gan}.resolution"
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 \
            or images.shape[1:] != (r, r, 3):
        shape = getattr(images, "shape", None)
        raise InputError(f"train_gan: images must be uint8 N x {r} x {r} x 3 ({key} = {r}), "
                         f"got {getattr(images, 'dtype', type(images))} {shape}")
    labels = np.asarray(labels)
    if len(labels) != len(images) or len(images) == 0:
        raise InputError(f"train_gan: {len(images)} images but {len(labels)} labels")
    if labels.min() < 0:
        raise InputError("train_gan: labels must be >= 0")
    if conditioning == "mask":
        from ganaug.masks import check_label_maps

        if masks is None:
            raise InputError(f"gans.{gan}: translates label maps into images, but no masks were given "
                             "(the training index needs a 'mask' column)")
        check_label_maps(masks, (len(images), r, r), what=f"train_gan({gan}) masks")
    return labels.astype(np.int64)


def _resume_problem(gan, mod, s, path, cfg, n, seed, out_dir, code_version) -> str | None:
    """Why the run in out_dir cannot be resumed with these settings (None if it can)."""
    if s.get("format") != mod.FORMAT:
        return f"{path}: not a ganaug {gan} snapshot (format {s.get('format')!r})"
    for k, v in s["cfg"].items():
        if k not in mod.RESUMABLE_CHANGES and plain(cfg.get(k)) != v:
            return f"gans.{gan}.{k}: is {cfg.get(k)!r} but the run in {out_dir} was started with {v!r}"
    if int(s["data"]["n"]) != n:
        return f"{path}: was trained on {s['data']['n']} images, now given {n}"
    if int(s.get("seed", seed)) != int(seed):
        return f"{path}: was trained with seed {s['seed']}, now given {seed}"
    if code_version is not None and s.get("code_version", code_version) != code_version:
        return f"{path}: was trained by other code (version {s['code_version']}, now {code_version})"
    return None


def _set_aside(out_dir: Path, files) -> Path:
    """Move a superseded run's files to out_dir/superseded/<UTC time>/ (nothing finished is deleted)."""
    dest = out_dir / "superseded" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        if Path(f).exists():
            Path(f).replace(dest / Path(f).name)
    return dest


def train_gan(gan: str, images: np.ndarray, labels: np.ndarray, out_dir, cfg: dict, seed: int, device,
              log: logging.Logger | None = None, masks: np.ndarray | None = None,
              restart_on_change: bool = False, code_version: str | None = None) -> dict:
    """Train (or resume) GAN `gan` on uint8 NHWC images with class labels (and, for the translation GANs,
    uint8 N x H x W label maps). Writes snapshots and metrics.jsonl to out_dir (see the module doc).

    A run in out_dir that cannot be resumed with these settings (changed config, data or seed) is an
    InputError, or with restart_on_change (the workflow: a changed config means a new run) its files are
    moved to out_dir/superseded/<time>/ and training starts over. `code_version` (the workflow: a hash of
    the GAN's code) is stored in the snapshots; a run of another code version is not resumed either, or a
    re-run that Snakemake starts because the code changed would only reload the finished run.

    Returns {"gan", "snapshots": [file names in out_dir], "kimg": images_seen / 1000, "seconds", "images": the
    number of training images (the masked ones for a translation GAN), which turns kimg into epochs}.
    """
    mod = gan_module(gan)
    log = log or logging.getLogger("ganaug")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    cfg = mod.resolve_config(cfg)
    labels = _check_data(gan, images, labels, masks, cfg, mod.CONDITIONING)
    if cfg.get("num_classes") is None:
        cfg["num_classes"] = max(int(labels.max()) + 1, 2)
    if labels.max() >= cfg["num_classes"]:
        raise InputError(f"gans.{gan}.num_classes: {cfg['num_classes']} but a label is {labels.max()}")
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg["num_threads"]))
    accel.configure_backends(device)
    ctx = distributed.context()
    if ctx.active:
        ctx.check_batch(cfg["batch"], f"gans.{gan}.batch")

    tr = mod.Trainer(images, labels, masks, cfg, int(seed), device, log)
    if ctx.active:
        distributed.check_supported(gan, tr)
    metrics_path = out_dir / "metrics.jsonl"
    existing = list_snapshots(out_dir)
    if existing:
        path = existing[-1][1]
        s = load_torch(path, map_location="cpu")  # RNG states must stay CPU tensors
        problem = _resume_problem(gan, mod, s, path, cfg, tr.N, seed, out_dir, code_version)
        if problem and restart_on_change and ctx.is_main:
            moved = _set_aside(out_dir, [p for _, p in existing] + [metrics_path])
            log.warning(f"{problem}: the earlier run is kept in {moved}; training starts over")
        if problem and restart_on_change:
            existing = []
        elif problem:
            raise InputError(f"{problem}; delete its snapshots to start over")
    if existing:
        tr.load_state_dict(s)
        if ctx.is_main:
            truncate_metrics(metrics_path, tr.cur_nimg)
        log.info(f"resuming from {path.name} at kimg {tr.cur_nimg / 1000:.3f}")
    elif metrics_path.exists() and ctx.is_main:
        metrics_path.unlink()

    schedule = snapshot_schedule(cfg)
    total_nimg = schedule[-1][0]
    pending = [(p, n) for p, n in schedule if p > tr.cur_nimg]
    log.info(f"{gan}: {tr.N} images, {cfg['num_classes']} classes, {cfg['resolution']} px, {tr.describe()}, "
             f"total {total_nimg / 1000:g} kimg, device {device}"
             + (f", {ctx.world} processes of batch {cfg['batch'] // ctx.world}" if ctx.active else ""))
    progress = Progress(total_nimg / 1000, "kimg", log, start=tr.cur_nimg / 1000)
    t_interval = t_log = time.perf_counter()
    nimg_interval = nimg_log = tr.cur_nimg
    # no host sync per step: losses stay on the device until a snapshot reads them (Trainer.metrics),
    # so `seconds` and the 30 s progress lines count the time to queue the steps on a GPU; the snapshot
    # (which copies the state to the host) closes every interval, so sec_per_kimg is exact per interval
    while tr.cur_nimg < total_nimg:
        t0 = time.perf_counter()
        tr.train_step()
        tr.seconds += time.perf_counter() - t0
        if time.perf_counter() - t_log > 30 and tr.cur_nimg < total_nimg:
            progress.update(tr.cur_nimg / 1000, images=tr.cur_nimg - nimg_log)
            t_log, nimg_log = time.perf_counter(), tr.cur_nimg
        crossed = [(p, n) for p, n in pending if tr.cur_nimg >= p]
        if not crossed:
            continue
        pending = [(p, n) for p, n in pending if tr.cur_nimg < p]
        name = crossed[-1][1]
        ctx.check_reductions()
        ctx.average_stats(getattr(tr, "stats", {}))  # all ranks: their stats are means over equal shares
        if not ctx.is_main:
            tr.reset_stats()
            continue
        state = tr.state_dict()
        state["seed"] = int(seed)
        if code_version is not None:
            state["code_version"] = code_version
        state["nominal_images"] = crossed[-1][0]
        save_torch(out_dir / name, state)
        dt = time.perf_counter() - t_interval
        dn = tr.cur_nimg - nimg_interval
        rec = dict(kimg=tr.cur_nimg / 1000, nominal_kimg=crossed[-1][0] / 1000, images_seen=tr.cur_nimg,
                   step=tr.step, snapshot=name, **tr.metrics(),
                   sec_per_kimg=dt / dn * 1000 if dn else None, img_per_s=dn / dt if dt > 0 else None,
                   wall_time=time.time(), seconds=tr.seconds)
        append_jsonl(metrics_path, rec)
        shown = {k: v for k, v in rec.items() if k.startswith("loss_") and v is not None}
        progress.update(tr.cur_nimg / 1000, images=tr.cur_nimg - nimg_log, snapshot=name, **shown)
        t_log, nimg_log = time.perf_counter(), tr.cur_nimg
        tr.reset_stats()
        t_interval, nimg_interval = time.perf_counter(), tr.cur_nimg

    ctx.barrier()  # rank 0 has written every snapshot
    return dict(gan=gan, snapshots=[p.name for _, p in list_snapshots(out_dir)], kimg=tr.cur_nimg / 1000,
                seconds=tr.seconds, images=int(tr.N))


# -------------------------------------------------------------------------------------- generation


def load_snapshot(snapshot_path, device="cpu") -> dict:
    """A snapshot dict of any of the four GANs (its `format` says which)."""
    path = Path(snapshot_path)
    if not path.exists():
        raise InputError(f"{path}: snapshot file not found")
    s = load_torch(path, map_location=device)
    if not isinstance(s, dict) or gan_of_format(s.get("format")) is None:
        raise InputError(f"{path}: not a ganaug GAN snapshot")
    return s


def load_generator(snapshot_path, device, ema: bool = True) -> torch.nn.Module:
    """The generator (EMA weights by default) of a snapshot, built from its stored config; eval mode."""
    s = load_snapshot(snapshot_path)
    G = gan_module(gan_of_format(s["format"])).build_generator(s, ema=ema)
    return G.to(torch.device(device)).eval().requires_grad_(False)


@torch.no_grad()
def generate(G, labels: np.ndarray, seed: int, device, batch_size: int = 64, truncation_psi: float = 1.0,
             masks: np.ndarray | None = None) -> np.ndarray:
    """Images of the given classes (and, for a translation GAN, of the given uint8 label maps), NHWC uint8.

    Deterministic for (seed, labels, masks): all latents are drawn up front from a CPU generator seeded
    with `seed`, so the result does not depend on batch_size or device.
    """
    device = torch.device(device)
    labels = np.asarray(labels, dtype=np.int64)
    r = G.resolution
    if labels.size and (labels.min() < 0 or labels.max() >= G.num_classes):
        raise InputError(f"generate: labels must be in 0..{G.num_classes - 1}")
    maps = None
    if G.conditioning == "mask":
        from ganaug.masks import check_label_maps

        if masks is None:
            raise InputError("generate: this GAN translates label maps into images; give `masks`")
        check_label_maps(masks, (len(labels), r, r), what="generate masks")
        maps = torch.from_numpy(np.ascontiguousarray(masks))
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(len(labels), G.z_dim, generator=g) if G.z_dim else None
    out = np.empty((len(labels), r, r, 3), dtype=np.uint8)
    c_all = torch.from_numpy(labels)
    for i in range(0, len(labels), batch_size):
        j = min(i + batch_size, len(labels))
        zb = z[i:j].to(device) if z is not None else None
        mb = maps[i:j].to(device).long() if maps is not None else None
        img = G.sample(zb, c_all[i:j].to(device), label_map=mb, truncation_psi=truncation_psi)
        img = torch.round(img * 127.5 + 127.5).clamp(0, 255).to(torch.uint8)
        out[i:j] = img.permute(0, 2, 3, 1).cpu().numpy()
    return out


def sample_grid(G, n_per_class: int, seed: int, device, truncation_psi: float = 1.0,
                masks: np.ndarray | None = None, mask_labels: np.ndarray | None = None) -> np.ndarray:
    """One uint8 image: row k holds n_per_class samples of class k. A translation GAN needs label maps
    and their classes (masks, mask_labels); the first n_per_class maps of each class are used."""
    classes = np.arange(G.num_classes)
    if G.conditioning == "mask":
        if masks is None or mask_labels is None:
            raise InputError("sample_grid: a translation GAN needs masks and mask_labels")
        mask_labels = np.asarray(mask_labels)
        rows = [np.flatnonzero(mask_labels == k)[:n_per_class] for k in classes]
        n_per_class = min(len(r) for r in rows)
        if n_per_class == 0:
            raise InputError("sample_grid: some class has no label map")
        idx = np.concatenate([r[:n_per_class] for r in rows])
        imgs = generate(G, mask_labels[idx], seed, device, truncation_psi=truncation_psi, masks=masks[idx])
    else:
        imgs = generate(G, np.repeat(classes, n_per_class), seed, device, truncation_psi=truncation_psi)
    r = imgs.shape[1]
    grid = imgs.reshape(G.num_classes, n_per_class, r, r, 3).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(grid.reshape(G.num_classes * r, n_per_class * r, 3))


def save_png(path, array: np.ndarray) -> None:
    """Write a uint8 HxWx3 (or HxW) array as PNG atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(array, dtype=np.uint8)).save(tmp, format="PNG")
