"""GPU check and throughput of the paper-scale settings (run on a CUDA machine, PYTHONPATH=src).

    python dev/gpu_check.py [--out results.json] [--steps 30]

For each GAN of config/paper.yaml: train steps/s and images/s at its paper resolution and widths, the
projected time of its configured total_kimg, generation images/s; a kill-and-resume on CUDA (same
snapshots continue); then the classifier (timm inception_v4 architecture, 299 px, batch 32): training
and 50-replica TTA throughput. Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time

import numpy as np
import torch
import yaml

from ganaug.gans import CONDITIONING, GAN_NAMES, gan_module
from ganaug.gans.training import generate, load_generator, train_gan


def blobs(n, r, rng):
    """Label maps with a disc lesion and a few attribute spots; images coloured by label."""
    yy, xx = np.mgrid[:r, :r]
    maps = np.ones((n, r, r), np.uint8)
    for i in range(n):
        cy, cx, rad = rng.uniform(0.3, 0.7, 2) * r, None, rng.uniform(0.15, 0.3) * r
        cy, cx = rng.uniform(0.3, 0.7) * r, rng.uniform(0.3, 0.7) * r
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < rad ** 2
        maps[i][inside] = 2
        maps[i][inside & (rng.random((r, r)) < 0.05)] = rng.integers(3, 8)
    palette = rng.integers(0, 256, (8, 3), dtype=np.uint8)
    return palette[maps], maps


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def emit(rec, out):
    print(json.dumps(rec), flush=True)
    out.append(rec)


def gan_throughput(name, cfg, steps, device, out):
    mod = gan_module(name)
    cfg = mod.resolve_config(dict(cfg, num_classes=2))
    r, b = cfg["resolution"], cfg["batch"]
    rng = np.random.default_rng(0)
    images, maps = blobs(max(4 * b, 64), r, rng)
    labels = rng.integers(0, 2, len(images))
    masks = maps if CONDITIONING[name] == "mask" else None
    tr = mod.Trainer(images, labels, masks, cfg, 1, torch.device(device), logging.getLogger("x"))
    if name == "pgan":  # measure at the final resolution (the most expensive phase)
        tr.cur_nimg = int(cfg["total_kimg"] * 1000) - 10 * b
    for _ in range(5):
        tr.train_step()
    sync()
    t = time.perf_counter()
    for _ in range(steps):
        tr.train_step()
    sync()
    dt = (time.perf_counter() - t) / steps
    rec = {"what": f"train {name}", "resolution": r, "batch": b, "sec_per_step": dt, "img_per_s": b / dt,
           "total_kimg": cfg["total_kimg"], "projected_hours": cfg["total_kimg"] * 1000 / (b / dt) / 3600,
           "max_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None}
    emit(rec, out)
    G = tr.G_ema.eval()
    n = 256
    lab = rng.integers(0, 2, n)
    gmasks = np.resize(maps, (n, r, r)) if masks is not None else None
    generate(G, lab[:16], 0, device, masks=None if gmasks is None else gmasks[:16])
    sync()
    t = time.perf_counter()
    imgs = generate(G, lab, 0, device, batch_size=64, masks=gmasks)
    sync()
    dt = time.perf_counter() - t
    emit({"what": f"generate {name}", "resolution": r, "img_per_s": n / dt,
          "pool_200k_hours": 200000 / (n / dt) / 3600, "shape": list(imgs.shape)}, out)
    del tr, G
    torch.cuda.empty_cache() if torch.cuda.is_available() else None


def gan_resume(name, device, out):
    """Tiny run killed after its first snapshot and resumed on the device: same schedule completes."""
    mod = gan_module(name)
    rng = np.random.default_rng(1)
    images, maps = blobs(32, 16, rng)
    labels = rng.integers(0, 2, 32)
    masks = maps if CONDITIONING[name] == "mask" else None
    small = {k: v for k, v in mod.DEFAULTS.items()}
    small.update(resolution=16, batch=8, total_kimg=0.064, snapshot_kimg=0.032)
    for k, v in (("channel_base", 256), ("channel_max", 16), ("z_dim", 16), ("w_dim", 16), ("ngf", 8),
                 ("ndf", 8), ("stable_kimg", 0.016), ("transition_kimg", 0.016)):
        if k in small:
            small[k] = v
    with tempfile.TemporaryDirectory() as d:
        train_gan(name, images, labels, d, dict(small, total_kimg=0.032), 3, device, masks=masks)
        s = train_gan(name, images, labels, d, small, 3, device, masks=masks)
        G = load_generator(f"{d}/{s['snapshots'][-1]}", device)
        a = generate(G, labels[:8], 5, device, batch_size=3, masks=None if masks is None else masks[:8])
        b = generate(G, labels[:8], 5, device, batch_size=8, masks=None if masks is None else masks[:8])
        emit({"what": f"resume {name}", "snapshots": s["snapshots"], "kimg": s["kimg"],
              "generate_batch_invariant_max_diff": int(np.abs(a.astype(int) - b.astype(int)).max())}, out)


def classifier(device, out, steps, model="timm:inception_v4", size=299):
    from ganaug.classifier.predict import predict_proba
    from ganaug.classifier.training import train_classifier

    rng = np.random.default_rng(0)
    n = 32 * steps
    imgs = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, n)
    for amp in (False, True):
        cfg = {"model": model, "pretrained": False, "input_size": size, "batch_size": 32,
               "epochs": 1, "amp": amp}
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            train_classifier(imgs, labels, imgs[:64], labels[:64], cfg, d, 0, device)
            sync()
            dt = time.perf_counter() - t
            from ganaug.classifier.training import load_classifier

            net, info = load_classifier(f"{d}/model.pt", device)
            predict_proba(net, info, imgs[:32], device, tta=50, batch_size=400, amp=amp)
            sync()
            t2 = time.perf_counter()
            predict_proba(net, info, imgs[:256], device, tta=50, batch_size=400, amp=amp)
            sync()
            dt2 = time.perf_counter() - t2
        emit({"what": f"classifier {model}", "amp_bf16": amp, "train_epoch_img_per_s": (n + 64) / dt,
              "tta50_img_per_s": 256 / dt2, "tta50_forward_per_s": 256 * 50 / dt2}, out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--small", action="store_true", help="a tiny classifier, to check the script on a CPU")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    out = [{"what": "device", "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "torch": torch.__version__}]
    print(json.dumps(out[0]), flush=True)
    paper = yaml.safe_load(open("config/paper.yaml"))["gans"]
    for name in [g for g in (args.only or GAN_NAMES) if g in GAN_NAMES]:
        try:
            gan_resume(name, device, out)
            gan_throughput(name, paper.get(name, {}), args.steps, device, out)
        except Exception as e:  # report and go on: one check must not hide the others
            emit({"what": name, "error": f"{type(e).__name__}: {e}"}, out)
    if args.only is None or "classifier" in args.only:
        try:
            if args.small:
                classifier(device, out, 2, "timm:test_resnet", 32)
            else:
                classifier(device, out, 8)
        except Exception as e:
            emit({"what": "classifier", "error": f"{type(e).__name__}: {e}"}, out)
    if args.out:
        json.dump(out, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
