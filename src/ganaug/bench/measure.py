"""Steady-state throughput of one piece of the study, measured through the library's public interfaces.

Every measurement warms up first (model build, cuDNN autotuning, compilation, caches) and then times a
window that begins and ends with a device synchronisation, so queued GPU work is inside the window and
set-up is outside it. Tasks:

- ``gan``: ``Trainer(images, labels, masks, cfg, seed, device, log).train_step()`` at a GAN's config
  (random uint8 images; random label maps for the translation GANs), img/s from ``cur_nimg``; the timed
  steps are a multiple of every ``*_interval`` key, so lazy regularisation counts at its real frequency;
  then ``generate`` with the EMA generator. PGAN is timed at its final resolution (its costliest phase).
- ``classifier``: one ``train_classifier`` epoch, timed between two optimiser steps (a counting wrapper
  around the optimiser class; model build, the first steps, validation and checkpoints are outside);
  then ``predict_proba`` with test-time augmentation and the plain forward pass of ``logits``.
- ``fid``: the FID Inception network's features (``ganaug.fid.InceptionFeatures``, random weights).

This file imports nothing from its own package: ``python measure.py TASK.json RESULT.json`` runs it
against whatever ``ganaug`` is on PYTHONPATH (an old checkout's src), so old and new code are measured by
the same harness. Keys of the config that the measured code does not know are dropped and listed.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

LOG = logging.getLogger("ganaug.bench")


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device) -> dict:
    """GPU: the most memory tensors held since reset_peak; CPU: the process's peak resident set (it
    includes everything measured before in the same process)."""
    if torch.device(device).type == "cuda":
        return {"peak_memory_gb": torch.cuda.max_memory_allocated(device) / 2**30,
                "memory_kind": "torch.cuda.max_memory_allocated"}
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {"peak_memory_gb": kb / 2**20, "memory_kind": "process peak RSS"}


def timed(fn, device) -> float:
    """Seconds of fn(), between two device synchronisations."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def known_keys(cfg: dict, defaults: dict) -> tuple[dict, list]:
    """The keys of cfg that the measured code knows, and the names of those it does not."""
    return {k: v for k, v in cfg.items() if k in defaults}, sorted(set(cfg) - set(defaults))


def bf16_unavailable(device, precision) -> str | None:
    if precision == "bf16" and torch.device(device).type != "cuda":
        return "bf16 is measured on CUDA only"
    return None


# ----------------------------------------------------------------------------------------------- GANs


def _random_vgg_file(directory) -> str:
    """torchvision's vgg19 feature layers with random weights, as a state-dict file (timing only; the VGG
    loss costs the same whatever its weights)."""
    import torchvision

    path = Path(directory) / "vgg19_features_random.pt"
    if not path.exists():
        with torch.device("meta"):  # the layers only (vgg19's classifier would cost seconds to initialise)
            features = torchvision.models.vgg19(weights=None).features[:30]
        features = features.to_empty(device="cpu")
        for p in features.parameters():
            torch.nn.init.normal_(p, 0.0, 0.02)
        torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return str(path)


def _interval_multiple(cfg: dict, steps: int) -> int:
    """steps rounded up to a multiple of every positive integer `*_interval` setting."""
    m = 1
    for k, v in cfg.items():
        if k.endswith("_interval") and isinstance(v, int) and not isinstance(v, bool) and v > 0:
            m = m * v // math.gcd(m, v)
    return max(m, int(math.ceil(steps / m)) * m)


def measure_gan(task: dict, device, workdir) -> dict:
    from ganaug.gans import CONDITIONING, gan_module
    from ganaug.gans.training import generate

    name, precision = task["gan"], task["precision"]
    why = bf16_unavailable(device, precision)
    if why:
        return {"status": "n/a", "reason": why}
    mod = gan_module(name)
    cfg, dropped = known_keys(dict(task["cfg"], num_classes=2), mod.DEFAULTS)
    cfg.update(known_keys(task.get("overrides") or {}, mod.DEFAULTS)[0])
    if "precision" in mod.DEFAULTS:
        cfg["precision"] = precision
    elif precision != "fp32":
        return {"status": "n/a", "reason": f"this code has no gans.{name}.precision key (fp32 only)"}
    if float(cfg.get("lambda_vgg", 0) or 0) > 0 and "vgg_weights" in mod.DEFAULTS:
        cfg.update(vgg_weights=_random_vgg_file(workdir), vgg_url=None)
    cfg = mod.resolve_config(cfg)
    r, batch = int(cfg["resolution"]), int(cfg["batch"])
    rng = np.random.default_rng(0)
    n = max(4 * batch, 32)
    images = rng.integers(0, 256, (n, r, r, 3), dtype=np.uint8)
    labels = np.arange(n) % 2
    masks = None
    if CONDITIONING[name] == "mask":
        from ganaug.masks import NUM_LABELS

        masks = rng.integers(0, NUM_LABELS, (n, r, r), dtype=np.uint8)
    tr = mod.Trainer(images, labels, masks, cfg, 0, torch.device(device), LOG)
    steps = int(task["steps"])
    if task.get("whole_intervals", True):
        steps = _interval_multiple(cfg, steps)
    if name == "pgan":  # the final resolution: start near the end of the run
        tr.cur_nimg = max(0, int(float(cfg["total_kimg"]) * 1000) - (int(task["warmup"]) + steps + 4) * batch)
    reset_peak(device)
    for _ in range(int(task["warmup"])):
        tr.train_step()
    sync(device)
    n0 = tr.cur_nimg
    seconds = timed(lambda: [tr.train_step() for _ in range(steps)], device)
    img_s = (tr.cur_nimg - n0) / seconds
    out = {"status": "ok", "resolution": r, "batch": batch, "steps": steps, "warmup": int(task["warmup"]),
           "train_img_s": img_s, "s_per_kimg": 1000.0 / img_s, **peak_memory(device), "dropped_keys": dropped}
    # generation with the EMA generator, built as a snapshot would rebuild it
    try:
        G = mod.build_generator(tr.state_dict(), ema=True)
    except Exception:  # noqa: BLE001 - a state_dict that is not a whole snapshot: the live EMA generator
        G = tr.G_ema if hasattr(tr, "G_ema") else tr.G
    G = G.to(torch.device(device)).eval().requires_grad_(False)
    del tr
    gb, gn = int(task["gen_batch"]), int(task["gen_images"])
    glabels = np.arange(gn) % 2
    gmasks = None if masks is None else np.resize(masks, (gn, r, r))

    def run(k):
        generate(G, glabels[:k], 1, device, batch_size=gb, masks=None if gmasks is None else gmasks[:k])

    run(gb)  # warm-up: the batch shape's autotuning
    reset_peak(device)
    seconds = timed(lambda: run(gn), device)
    mem = peak_memory(device)
    out.update(gen_img_s=gn / seconds, gen_batch=gb, gen_images=gn, gen_peak_memory_gb=mem["peak_memory_gb"])
    return out


# ----------------------------------------------------------------------------------------- classifier


class StepClock:
    """Counts optimiser steps; synchronises and reads the clock after step `start` and step `stop`."""

    def __init__(self, device, start: int, stop: int):
        self.device, self.start, self.stop = device, start, stop
        self.n, self.t0, self.t1 = 0, None, None

    def tick(self):
        self.n += 1
        if self.n in (self.start, self.stop):
            sync(self.device)
            t = time.perf_counter()
            if self.n == self.start:
                self.t0 = t
            else:
                self.t1 = t


def _counting(cls, clock: StepClock):
    class Counting(cls):
        def step(self, *a, **k):
            out = super().step(*a, **k)
            clock.tick()
            return out

    Counting.__name__ = cls.__name__
    return Counting


def _precision_kwargs(fn, precision) -> dict:
    """The measured code's way to ask for a precision: `precision=` (this code) or `amp=` (older)."""
    params = inspect.signature(fn).parameters
    if "precision" in params:
        return {"precision": precision}
    if "amp" in params:
        return {"amp": precision == "bf16"}
    return {}


def measure_classifier(task: dict, device, workdir) -> dict:
    from ganaug.classifier import predict as P
    from ganaug.classifier import training as T

    precision = task["precision"]
    why = bf16_unavailable(device, precision)
    if why:
        return {"status": "n/a", "reason": why}
    cfg, dropped = known_keys(task["cfg"], T.DEFAULTS)
    cfg.update(known_keys(task.get("overrides") or {}, T.DEFAULTS)[0])
    cfg.update(pretrained=False, weights_path=None, epochs=1)
    if "precision" in T.DEFAULTS:
        cfg["precision"] = precision
    elif "amp" in T.DEFAULTS:
        cfg["amp"] = precision == "bf16"
    elif precision != "fp32":
        return {"status": "n/a", "reason": "this code has no classifier precision setting"}
    cache = int(task["cache_size"])
    batch = int(T.complete_config(dict(cfg))["batch_size"])
    warmup, steps = int(task["warmup"]), int(task["steps"])
    rng = np.random.default_rng(0)
    n_train = batch * (warmup + steps + 1)  # one batch more: the timed window never holds the epoch's end
    images = rng.integers(0, 256, (n_train, cache, cache, 3), dtype=np.uint8)
    labels = np.arange(n_train) % 2
    clock = StepClock(device, warmup, warmup + steps)
    holder, attr = (T, "SGD") if hasattr(T, "SGD") else (torch.optim, "SGD")
    original = getattr(holder, attr)
    setattr(holder, attr, _counting(original, clock))
    run_dir = Path(tempfile.mkdtemp(prefix=f"classifier-{precision}-", dir=workdir))  # fresh: no resume
    try:
        T.train_classifier(images, labels, images[:batch], labels[:batch], cfg, run_dir, 0, device, LOG)
    finally:
        setattr(holder, attr, original)
    if clock.t1 is None:
        raise RuntimeError(f"the training epoch made {clock.n} optimiser steps, fewer than {warmup + steps}")
    out = {"status": "ok", "model": cfg.get("model"), "input_size": cfg.get("input_size"),
           "cache_size": cache, "batch": batch,
           "steps": steps, "warmup": warmup, "train_img_s": steps * batch / (clock.t1 - clock.t0),
           **peak_memory(device), "dropped_keys": dropped}
    model, info = T.load_classifier(run_dir / "model.pt", device)
    tta, tb, n_tta = int(task["tta"]), int(task["tta_batch"]), int(task["tta_images"])
    kw = _precision_kwargs(P.predict_proba, precision)
    per_pass = max(1, tb // tta)
    P.predict_proba(model, info, images[:2 * per_pass], device, tta=tta, batch_size=tb, **kw)  # warm-up
    seconds = timed(lambda: P.predict_proba(model, info, images[:n_tta], device, tta=tta, batch_size=tb,
                                            **kw), device)
    out.update(tta=tta, tta_batch=tb, tta_images=n_tta, tta_passes_s=n_tta * tta / seconds)
    eb = int(task["eval_batch"])
    kw = _precision_kwargs(P.logits, precision)
    n_eval = min(len(images), 4 * eb)
    P.logits(model, info, images[:eb], device, batch_size=eb, **kw)
    seconds = timed(lambda: P.logits(model, info, images[:n_eval], device, batch_size=eb, **kw), device)
    out.update(eval_batch=eb, eval_img_s=n_eval / seconds)
    return out


# ------------------------------------------------------------------------------------------- FID


def _random_inception_file(directory) -> str:
    """torch-fidelity's FID Inception-v3 with random weights, as a weights file (timing only)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fx

    path = Path(directory) / "inception_fid_random.pt"
    if path.exists():
        return str(path)
    cls = fx.FeatureExtractorInceptionV3
    load, fetch = cls.load_state_dict, fx.load_state_dict_from_url
    cls.load_state_dict = lambda self, *a, **k: None  # keep the random initialisation
    fx.load_state_dict_from_url = lambda *a, **k: {}  # and download nothing
    try:
        net = cls("inception-v3-compat", ["2048"])
    finally:
        cls.load_state_dict, fx.load_state_dict_from_url = load, fetch
    torch.save(net.state_dict(), path)
    return str(path)


def _random_torchvision_inception_file(directory) -> str:
    """torchvision's Inception-v3 with random weights (the FID network of older code of this project)."""
    import torchvision

    path = Path(directory) / "inception_tv_random.pt"
    if not path.exists():
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
        torch.save(net.state_dict(), path)
    return str(path)


def measure_fid(task: dict, device, workdir) -> dict:
    from ganaug.fid import InceptionFeatures

    try:
        ext, network = InceptionFeatures(_random_inception_file(workdir)), "torch-fidelity Inception-v3"
    except Exception as first:  # noqa: BLE001 - code whose FID network is torchvision's
        try:
            ext = InceptionFeatures(_random_torchvision_inception_file(workdir))
            network = "torchvision Inception-v3"
        except Exception:  # noqa: BLE001
            raise first from None
    size, batch, n = int(task["resolution"]), int(task["batch"]), int(task["images"])
    images = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    ext.features(images[:batch], batch_size=batch, device=device)
    seconds = timed(lambda: ext.features(images, batch_size=batch, device=device), device)
    return {"status": "ok", "network": network, "resolution": size, "batch": batch, "images": n,
            "features_img_s": n / seconds, "precision": "fp32"}


TASKS = {"gan": measure_gan, "classifier": measure_classifier, "fid": measure_fid}


def run_task(task: dict, workdir) -> dict:
    """Run one measurement; errors are reported in the result (one failure must not hide the others).
    With task["repeat"] > 1 the fastest repetition is kept (the least disturbed by other load)."""
    device = task["device"]
    if task.get("threads"):
        torch.set_num_threads(int(task["threads"]))
    best = None
    for _ in range(max(1, int(task.get("repeat", 1)))):
        try:
            res = TASKS[task["kind"]](task, device, workdir)
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            return {"status": "error", "error": f"{type(e).__name__}: {e}"}
        if res.get("status") != "ok":
            return res
        speed = next(k for k in res if k.endswith("_img_s") or k.endswith("_passes_s"))
        if best is None or res[speed] > best[speed]:
            best = res
    return best


def environment(device) -> dict:
    import ganaug

    dev = torch.device(device)
    return {"device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda"
            else (platform.processor() or platform.machine()), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "ganaug": str(Path(ganaug.__file__).parent),
            "python": platform.python_version(), "cpu_count": os.cpu_count()}


def main(argv=None) -> None:
    """python measure.py TASKS.json RESULTS.json: run a list of tasks, write their results."""
    argv = sys.argv[1:] if argv is None else argv
    tasks = json.loads(Path(argv[0]).read_text())
    with tempfile.TemporaryDirectory(prefix="ganaug-bench-") as workdir:
        results = [run_task(t, workdir) for t in tasks]
    env = environment(tasks[0]["device"]) if tasks else {}
    tmp = Path(argv[1]).with_suffix(".tmp")
    tmp.write_text(json.dumps({"environment": env, "results": results}))
    tmp.replace(argv[1])


if __name__ == "__main__":
    # run as a script, this file's folder heads sys.path: drop it, so its sibling modules cannot shadow
    # anything the measured code imports
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    main()
