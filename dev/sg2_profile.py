"""Where the StyleGAN2 training step spends its time: torch.profiler over the settings of dev/sg2_step_bench.py.

One thread, the toy widths at 64 px, batch 16, R1 every 16 steps, path length every 4 steps, ADA at p = 0.2.
Profiles `--steps` steps (a multiple of 16) after two warm-up steps and prints the time of each phase of
the step (the `record_function` labels of Trainer.train_step: G main, G path length, D main, D R1, G EMA;
ADA augment and the optimiser steps are nested in them and reported apart, their time taken out of the
phase's own), then the operators with the most self CPU time.

    PYTHONPATH=src python dev/sg2_profile.py [--steps 16] [--top 25] [--cfg '{"resample": "native"}']
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sg2_step_bench import bench_trainer  # noqa: E402  the bench's settings and trainer

PHASES = ("G main", "G path length", "D main", "D R1", "G EMA")
NESTED = ("ADA augment", "optimiser")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--cfg", default="{}", help="extra StyleGAN2 config keys (JSON)")
    args = ap.parse_args()
    tr = bench_trainer(json.loads(args.cfg), warmup=2)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            tr.train_step()
    events = prof.key_averages()
    total = {e.key: e.cpu_time_total / 1e3 / args.steps for e in events}  # ms per step
    nested = {k: total.get(k, 0.0) for k in NESTED}
    step = sum(total.get(p, 0.0) for p in PHASES)
    print(f"ms per step (mean of {args.steps} steps, profiler on): {step:.1f}")
    for p in PHASES:
        own = total.get(p, 0.0) - sum(_nested_in(prof, p, args.steps).values())
        print(f"  {p:16s} {own:8.1f} ms  {100 * own / step:5.1f} %")
    for k, v in nested.items():
        print(f"  {k:16s} {v:8.1f} ms  {100 * v / step:5.1f} %")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.top))


def _nested_in(prof, phase: str, steps: int) -> dict:
    """Time per step of the nested labels inside the outer label `phase`."""
    outer = [e for e in prof.events() if e.name == phase]
    out = {k: 0.0 for k in NESTED}
    for e in prof.events():
        if e.name in NESTED:
            s, t = e.time_range.start, e.time_range.end
            if any(o.time_range.start <= s and t <= o.time_range.end for o in outer):
                out[e.name] += (t - s) / 1e3 / steps
    return out


if __name__ == "__main__":
    main()
