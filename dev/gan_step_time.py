"""Training-step time of PGAN, pix2pixHD and SPADE: this checkout against another one (e.g. an older
commit in a `git worktree`), side by side in one run, on CPU with one thread.

    git worktree add /tmp/gans_old 2654405
    python dev/gan_step_time.py --old-src /tmp/gans_old/src [--gans pgan pix2pixhd spade] [--rounds 5]

Each measurement is a fresh process (PYTHONPATH = the checkout's src) that builds the GAN's trainer at the
toy widths of config/config.yaml (PGAN at its full resolution) on random data, takes 3 steps whose mean
losses it reports (the two checkouts must agree on them in fp32), then times `--steps` steps one by one.
Old and new alternate for `--rounds` rounds; the table gives each one's fastest step (the minimum is the
least disturbed by other load on the machine) and the ratio old / new. Writes JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(gan: str, steps: int) -> dict:
    import logging

    import numpy as np
    import torch
    import yaml

    from ganaug.gans import gan_module

    torch.set_num_threads(1)
    mod = gan_module(gan)
    cfg = dict(yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["gans"][gan])
    cfg = mod.resolve_config(cfg)
    cfg["num_classes"] = 2
    r, n = cfg["resolution"], 64
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, r, r, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, n)
    yy, xx = np.mgrid[:r, :r]
    masks = np.ones((n, r, r), np.uint8)
    for i in range(n):  # a lesion disc per map
        cy, cx, rad = rng.integers(r // 3, 2 * r // 3), rng.integers(r // 3, 2 * r // 3), rng.integers(3, r // 3)
        masks[i][(yy - cy) ** 2 + (xx - cx) ** 2 < rad * rad] = 2
    tr = mod.Trainer(images, labels, masks if mod.CONDITIONING == "mask" else None, cfg, 3, "cpu",
                     logging.getLogger("x"))
    if gan == "pgan":  # past the growing: every step at full resolution
        tr.cur_nimg = round(1000 * (cfg["stable_kimg"] + 4 * (cfg["stable_kimg"] + cfg["transition_kimg"])))
    for _ in range(3):
        tr.train_step()
    losses = {k: v for k, v in tr.metrics().items() if k.startswith("loss_") and v is not None}
    tr.reset_stats()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        tr.train_step()
        times.append(time.perf_counter() - t0)
    return dict(losses=losses, times=times)


def measure(src: Path, gan: str, steps: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "--worker", gan, "--steps", str(steps)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old-src", type=Path, help="the other checkout's src folder")
    p.add_argument("--new-src", type=Path, default=ROOT / "src")
    p.add_argument("--gans", nargs="+", default=["pgan", "pix2pixhd", "spade"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", type=Path)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker, a.steps)))
        return 0
    if a.old_src is None:
        p.error("--old-src is required")
    result = {}
    for gan in a.gans:
        runs = {"old": [], "new": []}
        for _ in range(a.rounds):
            for which, src in (("old", a.old_src), ("new", a.new_src)):
                runs[which].append(measure(src.resolve(), gan, a.steps))
        best = {w: min(t for r in rs for t in r["times"]) for w, rs in runs.items()}
        losses = {w: rs[0]["losses"] for w, rs in runs.items()}
        diff = max(abs(losses["old"][k] - losses["new"][k]) for k in losses["old"])
        result[gan] = dict(old_s=best["old"], new_s=best["new"], ratio=best["old"] / best["new"],
                           losses=losses, max_loss_diff=diff)
        print(f"{gan:10s} old {best['old'] * 1000:8.1f} ms  new {best['new'] * 1000:8.1f} ms  "
              f"old/new {best['old'] / best['new']:.2f}  max |loss old - new| over 3 steps {diff:.2g}", flush=True)
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
