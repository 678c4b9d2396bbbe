"""KID on CPU, one thread: the batched torch kid_per_subset of ganaug.fid against the per-subset numpy loop it
replaced (loaded from git, commit 36f43b6), same sizes, minimum of 3 runs. Run from the repository root:
PYTHONPATH=$PWD/src python dev/kid_speed.py"""

import subprocess
import time
import types

import numpy as np
import threadpoolctl
import torch

from ganaug.fid import kid

torch.set_num_threads(1)
threadpoolctl.threadpool_limits(1)
old = types.ModuleType("old_fid")
old.__dict__["__name__"] = "ganaug.old_fid"
exec(compile(subprocess.check_output(["git", "show", "36f43b6:src/ganaug/fid.py"], text=True)
             .replace("from .io import", "from ganaug.io import"), "old_fid.py", "exec"), old.__dict__)

rng = np.random.default_rng(0)
for n, d, m, s in [(500, 64, 100, 100), (2000, 512, 500, 20)]:
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    for name, fn in (("old numpy loop", lambda: old.kid(x, y, s, m)),
                     ("torch batched", lambda: kid(x, y, s, m, device="cpu"))):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        print(f"n={n} d={d} subset={m} subsets={s}: {name:15s} {min(times):.3f} s")
