"""Training of the class-conditional StyleGAN2 in kimg, with self-contained snapshots and exact resume.

Loss (as StyleGAN2/ADA): non-saturating logistic for G and D; lazy R1 on reals (gamma/2 * |grad|^2,
every `r1_interval` D steps, as a separate optimiser step with the loss scaled by the interval);
optional lazy path-length regulariser (weight `pl_weight`, every `pl_interval` G steps, half batch);
style mixing; Adam with the lazy-regularisation correction of lr and betas (c / (c + 1)); EMA of G
with half-life `ema_kimg` (optionally ramped up: ema_nimg <= cur_nimg * ema_rampup); optional ADA.

Snapshots. Snapshot points are nominal image counts: k * snapshot_kimg * 1000 (k = 1, 2, ...) below
total_kimg * 1000, plus the total itself. A snapshot is written at the first step whose images_seen
reaches the point (images_seen may exceed it by < batch) and is named after the NOMINAL point, so the
names are known in advance (`snapshot_schedule(cfg)`):
    whole kimg     -> snapshot-{kimg:06d}.pt            e.g. snapshot-000012.pt
    fractional     -> snapshot-{kimg:06d}_{frac:03d}.pt e.g. snapshot-000000_032.pt (0.032 kimg)
Names sort lexically in kimg order. Each snapshot holds everything a resume needs (plain state dicts
and tensors): G, G_ema, D, both optimisers, images_seen, step counter, all RNG states (the device
generator for z/noise/augmentation, the CPU generator of the data order and the current permutation),
ADA state, pl_mean, the config and the class count. One JSON line per snapshot goes to metrics.jsonl.

Resume: `train_gan` on a directory with snapshots continues from the latest one (metrics lines beyond
it are dropped). On CPU a killed + resumed run is bit-identical to an uninterrupted one, also across
processes, provided the number of torch threads is the same (the thread count changes float
reduction order). On CUDA, resume restores the same state but cuDNN/atomics make runs not bitwise
reproducible. Only total_kimg, snapshot_kimg and num_threads may change between the runs.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganaug.io import InputError, atomic_path, load_torch, save_torch, seed_from
from ganaug.progress import Progress

from .augment import AdaController, augment
from .stylegan2 import Generator, arch_config, build_networks

FORMAT = "ganaug-stylegan2-v1"

DEFAULTS = dict(
    resolution=32, z_dim=128, w_dim=128, mapping_layers=2, channel_base=4096, channel_max=64,
    num_classes=None,          # None: max(label) + 1 (at least 2)
    batch=16, lr=0.0025, betas=[0.0, 0.99],
    r1_gamma=0.05, r1_interval=16,
    pl_weight=0.0, pl_interval=4, pl_batch_shrink=2, pl_decay=0.01,
    style_mixing=0.9,
    ema_kimg=1.0, ema_rampup=0.05,
    ada=True, ada_target=0.6, ada_kimg=20.0, ada_interval=4,
    mirror=True,               # random x-flips of the reals (dataset mirroring)
    total_kimg=12.0, snapshot_kimg=2.0,
    num_threads=None,          # torch.set_num_threads (not part of the science)
)
# keys that may differ between a run and its resume
RESUMABLE_CHANGES = ("total_kimg", "snapshot_kimg", "num_threads")
TIMING_KEYS = ("sec_per_kimg", "img_per_s", "wall_time", "seconds")
CFG_KEY = "gans.stylegan2"


# ------------------------------------------------------------------------------------------ config


def resolve_config(cfg: dict) -> dict:
    """DEFAULTS updated by cfg; unknown keys and bad values raise InputError naming the key."""
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise InputError(f"{CFG_KEY}.{unknown[0]}: unknown key (known: {', '.join(sorted(DEFAULTS))})")
    out = dict(DEFAULTS)
    out.update(cfg)
    out["betas"] = [float(b) for b in out["betas"]]
    for k in ("resolution", "z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max", "batch",
              "r1_interval", "pl_interval", "pl_batch_shrink", "ada_interval"):
        if int(out[k]) != out[k] or int(out[k]) < 1:
            raise InputError(f"{CFG_KEY}.{k}: must be a positive integer, got {out[k]!r}")
        out[k] = int(out[k])
    for k in ("lr", "r1_gamma", "pl_weight", "pl_decay", "style_mixing", "ema_kimg", "ada_target",
              "ada_kimg", "total_kimg", "snapshot_kimg"):
        out[k] = float(out[k])
        if out[k] < 0:
            raise InputError(f"{CFG_KEY}.{k}: must be >= 0, got {out[k]}")
    if out["snapshot_kimg"] <= 0 or out["total_kimg"] <= 0:
        raise InputError(f"{CFG_KEY}.snapshot_kimg/total_kimg: must be > 0")
    r = out["resolution"]
    if r < 4 or r & (r - 1):
        raise InputError(f"{CFG_KEY}.resolution: must be a power of two >= 4, got {r}")
    if out["ema_rampup"] is not None:
        out["ema_rampup"] = float(out["ema_rampup"])
    out["ada"] = bool(out["ada"])
    out["mirror"] = bool(out["mirror"])
    return out


# ---------------------------------------------------------------------------------------- snapshots


def snapshot_name(nimg: int) -> str:
    """File name of the snapshot at the nominal image count `nimg` (see module doc)."""
    k, rest = divmod(int(nimg), 1000)
    return f"snapshot-{k:06d}.pt" if rest == 0 else f"snapshot-{k:06d}_{rest:03d}.pt"


_NAME_RE = re.compile(r"^snapshot-(\d{6})(?:_(\d{3}))?\.pt$")


def snapshot_kimg(path) -> float:
    """Nominal kimg of a snapshot file name."""
    m = _NAME_RE.match(Path(path).name)
    if not m:
        raise InputError(f"{path}: not a snapshot file name (snapshot-KKKKKK[_FFF].pt)")
    return int(m.group(1)) + (int(m.group(2)) / 1000 if m.group(2) else 0.0)


def snapshot_schedule(cfg: dict) -> list[tuple[int, str]]:
    """[(nominal images, file name)] of the snapshots a run with this config writes."""
    c = resolve_config(cfg)
    total = round(c["total_kimg"] * 1000)
    step = c["snapshot_kimg"] * 1000
    pts, k = [], 1
    while round(k * step) < total:
        pts.append(round(k * step))
        k += 1
    pts.append(total)
    return [(p, snapshot_name(p)) for p in pts]


def list_snapshots(out_dir) -> list[tuple[float, Path]]:
    """[(kimg, path)] of the snapshot files in out_dir, in kimg order."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = [(snapshot_kimg(p), p) for p in out_dir.iterdir() if _NAME_RE.match(p.name)]
    return sorted(found)


# ---------------------------------------------------------------------------------------- trainer


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    return obj


class _Trainer:
    def __init__(self, images, labels, cfg, seed, device, log):
        self.cfg = cfg
        self.device = device
        self.log = log
        self.B = cfg["batch"]
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # uint8 NHWC, once
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(device)
        self.N = len(images)
        self.G, self.D = build_networks(cfg, seed=seed % (2 ** 31 - 2))
        self.G.to(device).train()
        self.D.to(device).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.num_ws = self.G.num_ws
        b0, b1 = cfg["betas"]

        def opt(params, interval, lazy):
            r = interval / (interval + 1) if lazy else 1.0
            return torch.optim.Adam(params, lr=cfg["lr"] * r, betas=(b0 ** r, b1 ** r), eps=1e-8)

        self.G_opt = opt(self.G.parameters(), cfg["pl_interval"], cfg["pl_weight"] > 0)
        self.D_opt = opt(self.D.parameters(), cfg["r1_interval"], cfg["r1_gamma"] > 0)
        self.gen = torch.Generator(device=device).manual_seed(seed_from(seed, "stylegan2", "train"))
        self.data_gen = torch.Generator().manual_seed(seed_from(seed, "stylegan2", "data"))
        self.perm = torch.zeros(0, dtype=torch.int64)
        self.ada = AdaController(cfg["ada_target"], cfg["ada_kimg"], cfg["ada_interval"]) if cfg["ada"] else None
        self.pl_mean = torch.zeros([], device=device)
        self.cur_nimg = 0
        self.step = 0
        self.seconds = 0.0
        self.reset_stats()

    # --------------------------------------------------------------------------------- bookkeeping
    def reset_stats(self):
        self.stats = {k: 0.0 for k in ("loss_G", "loss_D", "r1", "pl", "real_score", "fake_score")}
        self.counts = {k: 0 for k in self.stats}

    def add_stat(self, key, value: torch.Tensor):
        self.stats[key] += float(value.detach().mean().item())
        self.counts[key] += 1

    def state_dict(self):
        rng = dict(gen=self.gen.get_state(), data_gen=self.data_gen.get_state(),
                   torch_cpu=torch.get_rng_state())
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return dict(
            format=FORMAT, cfg=_plain(self.cfg), arch=arch_config(self.cfg), num_classes=self.cfg["num_classes"],
            G=self.G.state_dict(), G_ema=self.G_ema.state_dict(), D=self.D.state_dict(),
            G_opt=self.G_opt.state_dict(), D_opt=self.D_opt.state_dict(),
            images_seen=self.cur_nimg, kimg=self.cur_nimg / 1000, step=self.step, seconds=self.seconds,
            ada=self.ada.state_dict() if self.ada else None, pl_mean=self.pl_mean.detach().cpu(),
            rng=rng, data=dict(perm=self.perm.clone(), n=self.N),
        )

    def load_state_dict(self, s):
        self.G.load_state_dict(s["G"])
        self.G_ema.load_state_dict(s["G_ema"])
        self.D.load_state_dict(s["D"])
        self.G_opt.load_state_dict(s["G_opt"])
        self.D_opt.load_state_dict(s["D_opt"])
        self.cur_nimg, self.step, self.seconds = int(s["images_seen"]), int(s["step"]), float(s["seconds"])
        if self.ada:
            self.ada.load_state_dict(s["ada"])
        self.pl_mean = s["pl_mean"].to(self.device)
        self.gen.set_state(s["rng"]["gen"])
        self.data_gen.set_state(s["rng"]["data_gen"])
        self.perm = s["data"]["perm"].clone()
        # the global RNGs are not used by training; restored anyway so a resumed process matches
        torch.set_rng_state(s["rng"]["torch_cpu"])
        if "cuda" in s["rng"] and torch.cuda.is_available() and len(s["rng"]["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(s["rng"]["cuda"])

    # ------------------------------------------------------------------------------------ sampling
    def real_batch(self):
        B = self.B
        while len(self.perm) < B:
            self.perm = torch.cat([self.perm, torch.randperm(self.N, generator=self.data_gen)])
        idx, self.perm = self.perm[:B], self.perm[B:]
        flip = torch.rand(B, generator=self.data_gen) < 0.5
        idx_d = idx.to(self.device)
        x = self.images[idx_d].permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if self.cfg["mirror"]:
            x = torch.where(flip.to(self.device).reshape(B, 1, 1, 1), x.flip(3), x)
        return x, self.labels[idx_d]

    def fake_inputs(self, n):
        z = torch.randn(n, self.cfg["z_dim"], device=self.device, generator=self.gen)
        c = self.labels[torch.randint(0, self.N, (n,), device=self.device, generator=self.gen)]
        return z, c

    def run_G(self, z, c):
        G = self.G
        ws = G.map(z, c, update_w_avg=True)
        # style mixing: from a random layer on, use the w of a second latent (same class)
        z2 = torch.randn(z.shape, device=self.device, generator=self.gen)
        cutoff = torch.randint(1, self.num_ws, (), device=self.device, generator=self.gen)
        use = torch.rand((), device=self.device, generator=self.gen) < self.cfg["style_mixing"]
        if self.cfg["style_mixing"] > 0:
            cutoff = torch.where(use, cutoff, torch.full_like(cutoff, self.num_ws))
            ws2 = G.map(z2, c)
            mix = (torch.arange(self.num_ws, device=self.device) >= cutoff).reshape(1, -1, 1)
            ws = torch.where(mix, ws2, ws)
        img = G.synthesis(ws, noise_mode="random", generator=self.gen)
        return img, ws

    def run_D(self, img, c):
        if self.ada is not None and self.ada.p > 0:
            img = augment(img, self.ada.p, self.gen)
        return self.D(img, c)

    # ---------------------------------------------------------------------------------------- step
    def train_step(self):
        cfg, B = self.cfg, self.B
        G, D = self.G, self.D
        real, real_c = self.real_batch()

        # G main: non-saturating logistic loss
        G.requires_grad_(True)
        D.requires_grad_(False)
        self.G_opt.zero_grad(set_to_none=True)
        z, c = self.fake_inputs(B)
        img, _ = self.run_G(z, c)
        logits = self.run_D(img, c)
        loss_G = F.softplus(-logits).mean()
        loss_G.backward()
        self.G_opt.step()
        self.add_stat("loss_G", loss_G)
        self.add_stat("fake_score", logits)

        # G reg: path-length, lazily
        if cfg["pl_weight"] > 0 and self.step % cfg["pl_interval"] == 0:
            self.G_opt.zero_grad(set_to_none=True)
            n = max(B // cfg["pl_batch_shrink"], 1)
            z, c = self.fake_inputs(n)
            img, ws = self.run_G(z, c)
            h, w = img.shape[2:]
            pl_noise = torch.randn(img.shape, device=self.device, generator=self.gen) / math.sqrt(h * w)
            (grads,) = torch.autograd.grad((img * pl_noise).sum(), ws, create_graph=True)
            lengths = grads.square().sum(2).mean(1).sqrt()
            pl_mean = self.pl_mean.lerp(lengths.mean().detach(), cfg["pl_decay"])
            self.pl_mean = pl_mean.detach()
            penalty = (lengths - pl_mean).square()
            (penalty.mean() * cfg["pl_weight"] * cfg["pl_interval"] + img[:, 0, 0, 0].sum() * 0).backward()
            self.G_opt.step()
            self.add_stat("pl", penalty)

        # D main
        G.requires_grad_(False)
        D.requires_grad_(True)
        self.D_opt.zero_grad(set_to_none=True)
        z, c = self.fake_inputs(B)
        with torch.no_grad():
            img, _ = self.run_G(z, c)
        fake_logits = self.run_D(img, c)
        real_logits = self.run_D(real, real_c)
        loss_D = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
        loss_D.backward()
        self.D_opt.step()
        self.add_stat("loss_D", loss_D)
        self.add_stat("real_score", real_logits)
        if self.ada is not None:
            self.ada.accumulate(real_logits)

        # D reg: R1 on reals, lazily
        if cfg["r1_gamma"] > 0 and self.step % cfg["r1_interval"] == 0:
            self.D_opt.zero_grad(set_to_none=True)
            x = real.detach().requires_grad_(True)
            logits = self.run_D(x, real_c)
            (grads,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
            penalty = grads.square().sum(dim=[1, 2, 3])
            (penalty.mean() * (cfg["r1_gamma"] / 2) * cfg["r1_interval"] + logits.sum() * 0).backward()
            self.D_opt.step()
            self.add_stat("r1", penalty)

        # G EMA
        ema_nimg = cfg["ema_kimg"] * 1000
        if cfg["ema_rampup"] is not None:
            ema_nimg = min(ema_nimg, self.cur_nimg * cfg["ema_rampup"])
        beta = 0.5 ** (B / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.detach().lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)

        self.cur_nimg += B
        self.step += 1
        if self.ada is not None:
            self.ada.step(B)

    def metrics(self):
        out = {k: (self.stats[k] / self.counts[k] if self.counts[k] else None) for k in self.stats}
        out["augment_p"] = self.ada.p if self.ada else 0.0
        return out


# --------------------------------------------------------------------------------------- train_gan


def _check_data(images, labels, cfg):
    r = cfg["resolution"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 \
            or images.shape[1:] != (r, r, 3):
        shape = getattr(images, "shape", None)
        raise InputError(f"train_gan: images must be uint8 N x {r} x {r} x 3 "
                         f"({CFG_KEY}.resolution = {r}), got {getattr(images, 'dtype', type(images))} {shape}")
    labels = np.asarray(labels)
    if len(labels) != len(images) or len(images) == 0:
        raise InputError(f"train_gan: {len(images)} images but {len(labels)} labels")
    if labels.min() < 0:
        raise InputError("train_gan: labels must be >= 0")
    return labels.astype(np.int64)


def _truncate_metrics(path: Path, images_seen: int):
    if not path.exists():
        return
    import json

    keep = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line
        if rec.get("images_seen", 0) <= images_seen:
            keep.append(line)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(s + "\n" for s in keep))


def train_gan(images: np.ndarray, labels: np.ndarray, out_dir, cfg: dict, seed: int, device,
              log: logging.Logger | None = None) -> dict:
    """Train (or resume) a class-conditional StyleGAN2; see the module doc for snapshots and metrics.

    Returns {"snapshots": [file names in out_dir], "kimg": images_seen / 1000, "seconds": training time}.
    """
    from ganaug.io import append_jsonl

    log = log or logging.getLogger("ganaug")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    cfg = resolve_config(cfg)
    labels = _check_data(images, labels, cfg)
    if cfg["num_classes"] is None:
        cfg["num_classes"] = max(int(labels.max()) + 1, 2)
    if labels.max() >= cfg["num_classes"]:
        raise InputError(f"{CFG_KEY}.num_classes: {cfg['num_classes']} but a label is {labels.max()}")
    if cfg["num_threads"]:
        torch.set_num_threads(int(cfg["num_threads"]))

    tr = _Trainer(images, labels, cfg, int(seed), device, log)
    metrics_path = out_dir / "metrics.jsonl"
    existing = list_snapshots(out_dir)
    if existing:
        path = existing[-1][1]
        s = load_torch(path, map_location="cpu")  # RNG states must stay CPU tensors
        if s.get("format") != FORMAT:
            raise InputError(f"{path}: not a ganaug StyleGAN2 snapshot")
        for k, v in s["cfg"].items():
            if k not in RESUMABLE_CHANGES and _plain(cfg.get(k)) != v:
                raise InputError(f"{CFG_KEY}.{k}: is {cfg.get(k)!r} but the run in {out_dir} was started with "
                                 f"{v!r}; delete its snapshots to start over")
        if int(s["data"]["n"]) != tr.N:
            raise InputError(f"{path}: was trained on {s['data']['n']} images, now given {tr.N}")
        if int(s.get("seed", seed)) != int(seed):
            raise InputError(f"{path}: was trained with seed {s['seed']}, now given {seed}")
        tr.load_state_dict(s)
        _truncate_metrics(metrics_path, tr.cur_nimg)
        log.info(f"resuming from {path.name} at kimg {tr.cur_nimg / 1000:.3f}")
    elif metrics_path.exists():
        metrics_path.unlink()

    schedule = snapshot_schedule(cfg)
    total_nimg = schedule[-1][0]
    pending = [(p, n) for p, n in schedule if p > tr.cur_nimg]
    log.info(f"stylegan2: {tr.N} images, {cfg['num_classes']} classes, {cfg['resolution']} px, "
             f"G {sum(p.numel() for p in tr.G.parameters())} / D {sum(p.numel() for p in tr.D.parameters())} "
             f"params, total {total_nimg / 1000:g} kimg, device {device}")
    progress = Progress(total_nimg / 1000, "kimg", log, start=tr.cur_nimg / 1000)
    t_interval = time.perf_counter()
    nimg_interval = tr.cur_nimg
    t_log = time.perf_counter()
    nimg_log = tr.cur_nimg
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
        state = tr.state_dict()
        state["seed"] = int(seed)
        state["nominal_images"] = crossed[-1][0]
        save_torch(out_dir / name, state)
        dt = time.perf_counter() - t_interval
        dn = tr.cur_nimg - nimg_interval
        rec = dict(kimg=tr.cur_nimg / 1000, nominal_kimg=crossed[-1][0] / 1000, images_seen=tr.cur_nimg,
                   step=tr.step, snapshot=name, **tr.metrics(),
                   sec_per_kimg=dt / dn * 1000 if dn else None, img_per_s=dn / dt if dt > 0 else None,
                   wall_time=time.time(), seconds=tr.seconds)
        append_jsonl(metrics_path, rec)
        progress.update(tr.cur_nimg / 1000, images=tr.cur_nimg - nimg_log, loss_G=rec["loss_G"],
                        loss_D=rec["loss_D"], p=rec["augment_p"], snapshot=name)
        t_log, nimg_log = time.perf_counter(), tr.cur_nimg
        tr.reset_stats()
        t_interval, nimg_interval = time.perf_counter(), tr.cur_nimg

    return dict(snapshots=[p.name for _, p in list_snapshots(out_dir)], kimg=tr.cur_nimg / 1000,
                seconds=tr.seconds)


# -------------------------------------------------------------------------------------- generation


def load_snapshot(snapshot_path, device="cpu") -> dict:
    path = Path(snapshot_path)
    if not path.exists():
        raise InputError(f"{path}: snapshot file not found")
    s = load_torch(path, map_location=device)
    if not isinstance(s, dict) or s.get("format") != FORMAT:
        raise InputError(f"{path}: not a ganaug StyleGAN2 snapshot")
    return s


def load_generator(snapshot_path, device, ema: bool = True) -> torch.nn.Module:
    """The generator (EMA weights by default) of a snapshot, built from its stored config; eval mode."""
    device = torch.device(device)
    s = load_snapshot(snapshot_path)
    G = Generator(**s["arch"], seed=0)
    G.load_state_dict(s["G_ema" if ema else "G"])
    return G.to(device).eval().requires_grad_(False)


@torch.no_grad()
def generate(G, labels: np.ndarray, seed: int, device, batch_size: int = 64, truncation_psi: float = 1.0,
             noise_mode: str = "const") -> np.ndarray:
    """Images of the given classes, NHWC uint8, deterministic for (seed, labels).

    All latents are drawn up front from a CPU generator seeded with `seed` (so the result does not
    depend on batch_size or device); noise inputs are the generator's constant buffers by default.
    """
    device = torch.device(device)
    labels = np.asarray(labels, dtype=np.int64)
    r = G.resolution
    if labels.size and (labels.min() < 0 or labels.max() >= G.num_classes):
        raise InputError(f"generate: labels must be in 0..{G.num_classes - 1}")
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(len(labels), G.z_dim, generator=g)
    ng = torch.Generator(device=device).manual_seed(int(seed)) if noise_mode == "random" else None
    out = np.empty((len(labels), r, r, 3), dtype=np.uint8)
    c_all = torch.from_numpy(labels)
    for i in range(0, len(labels), batch_size):
        zb = z[i:i + batch_size].to(device)
        cb = c_all[i:i + batch_size].to(device)
        img = G(zb, cb, truncation_psi=truncation_psi, noise_mode=noise_mode, generator=ng)
        img = torch.round(img * 127.5 + 127.5).clamp(0, 255).to(torch.uint8)
        out[i:i + len(zb)] = img.permute(0, 2, 3, 1).cpu().numpy()
    return out


def sample_grid(G, n_per_class: int, seed: int, device, truncation_psi: float = 1.0) -> np.ndarray:
    """One uint8 image: row k holds n_per_class samples of class k."""
    labels = np.repeat(np.arange(G.num_classes), n_per_class)
    imgs = generate(G, labels, seed, device, truncation_psi=truncation_psi)
    r = imgs.shape[1]
    grid = imgs.reshape(G.num_classes, n_per_class, r, r, 3).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(grid.reshape(G.num_classes * r, n_per_class * r, 3))


def save_png(path, array: np.ndarray) -> None:
    """Write a uint8 HxWx3 (or HxW) array as PNG atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(array, dtype=np.uint8)).save(tmp, format="PNG")
