"""GPU check: kill-and-resume of every GAN on the device, the benchmark (python -m ganaug.bench), then
StyleGAN2 at the paper config with `compile` off and on.

    PYTHONPATH=src python dev/gpu_check.py [--compile-steps 16] [bench options, e.g. --compare-commit 2654405
                                           --out gpu.json]

The resume check trains a tiny run of each GAN to its first snapshot, resumes it to the second, and
checks that generation does not depend on the batch size (one JSON line per GAN). The throughput
figures and the study's predicted cost come from the benchmark, which gets every other argument. The
compile check (one JSON line per setting; --compile-steps 0 skips it) times the StyleGAN2 training step
of config/paper.yaml eagerly and with torch.compile of its main passes, after warm-up steps that include
the compilation.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from ganaug.bench.__main__ import main as bench_main
from ganaug.bench.measure import measure_gan
from ganaug.gans import BUILTIN, CONDITIONING, gan_module
from ganaug.gans.training import generate, load_generator, train_gan


def gan_resume(name, device) -> dict:
    """Tiny run killed after its first snapshot and resumed on the device: the same schedule completes."""
    mod = gan_module(name)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (32, 16, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, 32)
    masks = rng.integers(0, 8, (32, 16, 16), dtype=np.uint8) if CONDITIONING[name] == "mask" else None
    small = dict(mod.DEFAULTS, resolution=16, batch=8, total_kimg=0.064, snapshot_kimg=0.032)
    for k, v in (("channel_base", 256), ("channel_max", 16), ("z_dim", 16), ("w_dim", 16), ("ngf", 8),
                 ("ndf", 8), ("stable_kimg", 0.016), ("transition_kimg", 0.016), ("model_channels", 8),
                 ("num_steps", 4)):
        if k in small:
            small[k] = v
    with tempfile.TemporaryDirectory() as d:
        train_gan(name, images, labels, d, dict(small, total_kimg=0.032), 3, device, masks=masks)
        s = train_gan(name, images, labels, d, small, 3, device, masks=masks)
        G = load_generator(f"{d}/{s['snapshots'][-1]}", device)
        a = generate(G, labels[:8], 5, device, batch_size=3, masks=None if masks is None else masks[:8])
        b = generate(G, labels[:8], 5, device, batch_size=8, masks=None if masks is None else masks[:8])
    return {"what": f"resume {name}", "snapshots": s["snapshots"], "kimg": s["kimg"],
            "generate_batch_invariant_max_diff": int(np.abs(a.astype(int) - b.astype(int)).max())}


def stylegan2_compile(device, steps: int) -> list[dict]:
    """Training throughput of StyleGAN2 at the paper config with compile off and on."""
    paper = Path(__file__).resolve().parents[1] / "config" / "paper.yaml"
    cfg = yaml.safe_load(paper.read_text())["gans"]["stylegan2"]
    out = []
    for compiled in (False, True):
        task = {"gan": "stylegan2", "cfg": cfg, "overrides": {"compile": compiled}, "precision": "auto",
                "warmup": 3, "steps": steps, "whole_intervals": True, "gen_batch": 32, "gen_images": 64}
        rec = {"what": "stylegan2 paper config", "compile": compiled}
        try:
            with tempfile.TemporaryDirectory() as d:
                res = measure_gan(task, device, d)
            rec.update({k: res[k] for k in ("status", "reason", "train_img_s", "s_per_kimg", "steps",
                                            "peak_memory_gb") if k in res})
        except Exception as e:  # report and go on
            rec["error"] = f"{type(e).__name__}: {e}"
        out.append(rec)
    return out


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    compile_steps = 16
    if "--compile-steps" in argv:
        i = argv.index("--compile-steps")
        compile_steps = int(argv[i + 1])
        del argv[i:i + 2]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for name in BUILTIN:  # the four GANs and the diffusion model
        try:
            rec = gan_resume(name, device)
        except Exception as e:  # report and go on: one check must not hide the others
            rec = {"what": f"resume {name}", "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(rec), flush=True)
    bench_main(argv)
    if compile_steps > 0:
        for rec in stylegan2_compile(device, compile_steps):
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
