"""StyleGAN2 training step, old code against this tree, side by side on the CPU.

Runs the trainer of an older commit (default 2654405, the code before issue 13) and of this working tree
in alternating subprocesses (PYTHONPATH pointing at each `src`), each with one torch thread, and prints
the seconds per step of each. Settings: the toy widths of config/config.yaml at 64 px, batch 16, R1
(every 16 steps) and path length (every 4 steps) on, ADA on at p = 0.2. A repeat times `--steps` steps
(a multiple of 16, so that every lazy regulariser runs its share) after two warm-up steps; the figure of
each version is the minimum over the repeats. Time is the process's CPU time (one thread, so on an idle
machine the same as the wall time, which is printed too): on a shared machine it counts only this
process's work.

    python dev/sg2_step_bench.py [--old 2654405] [--steps 16] [--repeats 3]
                                 [--new-cfg '{"resample": "native"}']
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CFG = dict(resolution=64, z_dim=128, w_dim=128, mapping_layers=2, channel_base=4096, channel_max=64, batch=16,
           lr=0.0025, r1_gamma=0.05, r1_interval=16, pl_weight=2.0, pl_interval=4, ada=True)


def bench_trainer(extra: dict, warmup: int):
    """The StyleGAN2 Trainer of the bench's settings (CFG updated by `extra`) on seeded random images, one
    thread, ADA at p = 0.2, after `warmup` steps; with whichever ganaug is on the path (old or new code)."""
    import logging

    import numpy as np
    import torch

    from ganaug.gans import stylegan2

    torch.set_num_threads(1)
    cfg = stylegan2.resolve_config(dict(CFG, **extra))
    cfg["num_classes"] = 2
    rng = np.random.default_rng(0)
    r = cfg["resolution"]
    images = rng.integers(0, 256, (64, r, r, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, 64)
    tr = stylegan2.Trainer(images, labels, None, cfg, 0, torch.device("cpu"), logging.getLogger("bench"))
    tr.ada.p = 0.2
    for _ in range(warmup):
        tr.train_step()
    return tr


def worker(steps: int, warmup: int, extra: dict) -> dict:
    import ganaug

    tr = bench_trainer(extra, warmup)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        tr.train_step()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return dict(sec_per_step=cpu / steps, wall_sec_per_step=wall / steps,
                code=str(Path(ganaug.__file__).parents[1]))


def run(src: Path, args, extra: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--worker", "--steps", str(args.steps), "--cfg", json.dumps(extra)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", default="2654405", help="git revision of the old code")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--new-cfg", default="{}", help="extra StyleGAN2 config keys (JSON) for this tree's run")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--cfg", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.steps, 2, json.loads(args.cfg))))
        return
    if args.steps % 16:
        ap.error("--steps must be a multiple of 16 (R1 runs every 16 steps)")
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.old, "src"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        versions = {f"old ({args.old})": (Path(tmp) / "src", {}),
                    "new (this tree)": (ROOT / "src", json.loads(args.new_cfg))}
        times = {k: [] for k in versions}
        for rep in range(args.repeats):
            for name, (src, extra) in versions.items():  # alternate, so that load changes hit both
                res = run(src, args, extra)
                times[name].append(res["sec_per_step"])
                print(f"repeat {rep + 1}: {name}: {res['sec_per_step']:.3f} s/step CPU, "
                      f"{res['wall_sec_per_step']:.3f} s/step wall  ({res['code']})", flush=True)
    best = {k: min(v) for k, v in times.items()}
    old, new = best.values()
    print(json.dumps(dict(settings=CFG, new_cfg=json.loads(args.new_cfg), steps=args.steps,
                          repeats=args.repeats, min_sec_per_step=best, speedup=old / new)))
    print(f"old {old:.3f} s/step, new {new:.3f} s/step: {old / new:.2f}x (min of {args.repeats} repeats)")


if __name__ == "__main__":
    main()
