"""Training-step time of PGAN, pix2pixHD and SPADE: this checkout against another one (e.g. an older
commit in a `git worktree`), side by side in one run, on CPU with one thread.

    git worktree add /tmp/gans_old 2654405
    python dev/gan_step_time.py --old-src /tmp/gans_old/src [--gans pgan pix2pixhd spade] [--steps 30]

Per GAN, one process per checkout (PYTHONPATH = its src) builds the trainer at the toy widths of
config/config.yaml (PGAN at its full resolution) on the same random data and takes 3 steps, whose mean
losses it reports (the two must agree in fp32). Then the two take `--steps` timed steps in turn, one step
each (who goes first alternates), so that load from elsewhere on the machine hits both alike. Reported:
each one's fastest step, their ratio old / new, and the median of the per-step ratios. JSON with --json.
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


def serve(gan: str) -> None:
    """Worker: build the trainer, take 3 steps and print their mean losses as JSON; then, per line
    `step` on stdin, take one step and print its time in seconds."""
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
    print(json.dumps(losses), flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        t0 = time.perf_counter()
        tr.train_step()
        print(time.perf_counter() - t0, flush=True)


class Worker:
    def __init__(self, src: Path, gan: str):
        env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", gan], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.losses = json.loads(self.proc.stdout.readline())

    def step(self) -> float:
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old-src", type=Path, help="the other checkout's src folder")
    p.add_argument("--new-src", type=Path, default=ROOT / "src")
    p.add_argument("--gans", nargs="+", default=["pgan", "pix2pixhd", "spade"])
    p.add_argument("--steps", type=int, default=30, help="timed steps of each")
    p.add_argument("--json", type=Path)
    p.add_argument("--serve", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.serve:
        serve(a.serve)
        return 0
    if a.old_src is None:
        p.error("--old-src is required")
    result = {}
    for gan in a.gans:
        old, new = Worker(a.old_src.resolve(), gan), Worker(a.new_src.resolve(), gan)
        t_old, t_new = [], []
        for i in range(a.steps):  # one step each in turn (who goes first alternates): the same load for both
            pair = (old, new) if i % 2 == 0 else (new, old)
            times = {id(w): w.step() for w in pair}
            t_old.append(times[id(old)])
            t_new.append(times[id(new)])
        old.close()
        new.close()
        ratios = sorted(o / n for o, n in zip(t_old, t_new))
        median = ratios[len(ratios) // 2]
        diff = max(abs(old.losses[k] - new.losses[k]) for k in old.losses)
        result[gan] = dict(old_min_s=min(t_old), new_min_s=min(t_new), ratio_of_minima=min(t_old) / min(t_new),
                           median_paired_ratio=median, old_losses=old.losses, new_losses=new.losses,
                           max_loss_diff=diff)
        print(f"{gan:10s} fastest step: old {min(t_old) * 1000:7.1f} ms, new {min(t_new) * 1000:7.1f} ms, "
              f"old/new {min(t_old) / min(t_new):.2f}; median of the paired old/new ratios {median:.2f}; "
              f"max |loss old - new| over the first 3 steps {diff:.2g}", flush=True)
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
