"""Progress lines for long jobs: done/total in the job's unit, images per second, time left."""

from __future__ import annotations

import logging
import time


def format_seconds(s: float) -> str:
    s = int(round(max(s, 0)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


class Progress:
    """Log progress of a job measured in `unit` (kimg, epoch, shard, ...).

    update(done, images) logs e.g. 'kimg 12.0/20.0 | 85.3 img/s | elapsed 1m10s | left 0m47s'.
    `start` is where a resumed job begins, so rates count only this process's work.
    """

    def __init__(self, total: float, unit: str, logger: logging.Logger | None = None, start: float = 0.0):
        self.total = float(total)
        self.unit = unit
        self.log = logger or logging.getLogger("ganaug")
        self.start_done = float(start)
        self.t0 = time.perf_counter()
        self.images = 0

    def update(self, done: float, images: int = 0, **extra) -> str:
        self.images += images
        elapsed = time.perf_counter() - self.t0
        rate = self.images / elapsed if elapsed > 0 else 0.0
        progressed = done - self.start_done
        left = (self.total - done) * elapsed / progressed if progressed > 0 else float("nan")
        parts = [f"{self.unit} {done:.1f}/{self.total:.1f}", f"{rate:.1f} img/s", f"elapsed {format_seconds(elapsed)}"]
        parts.append(f"left {format_seconds(left)}" if left == left else "left ?")
        parts += [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items()]
        line = " | ".join(parts)
        self.log.info(line)
        return line


def setup_logging(log_path=None, level=logging.INFO) -> logging.Logger:
    """Log to a file (the rule's log) and stderr, with timestamps."""
    logger = logging.getLogger("ganaug")
    logger.setLevel(level)
    logger.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [logging.StreamHandler()]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="a"))
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    return logger


def start_job(log_path=None, threads: int = 1, device: str | None = "none", gpus: int = 1):
    """Common start of a workflow job: logging to the rule's log (uncaught errors included), CPU threads,
    and, for jobs that use torch, the device.

    device: 'none' for jobs without torch (nothing heavy is imported), else 'auto', 'cpu' or 'cuda[:k]';
    'auto' may be overridden by the GANAUG_DEVICE environment variable. A job that will use CUDA ('auto' on
    a machine with GPUs, or 'cuda') first takes `gpus` GPUs of its own (the rule's resources gpu;
    ganaug.gpu_slots: a lock per GPU, CUDA_VISIBLE_DEVICES set before CUDA initialises; it waits while they
    are taken); 'cuda' without a GPU fails here, before any work. Returns (logger, torch.device or None).
    """
    import os
    import sys

    logger = setup_logging(log_path)

    def log_uncaught(kind, value, tb):  # so the rule's log says why the job failed
        logger.error("job failed", exc_info=(kind, value, tb))

    sys.excepthook = log_uncaught
    if device == "none":
        return logger, None
    from ganaug.gpu_slots import claim_device

    preference = (os.environ.get("GANAUG_DEVICE") or "auto") if device == "auto" else device
    preference = claim_device(preference, logger, gpus=gpus)  # before anything initialises CUDA

    import torch

    from ganaug.io import select_device

    torch.set_num_threads(max(1, int(threads)))
    dev = select_device(preference)
    logger.info("device %s, %d CPU thread(s)", dev, torch.get_num_threads())
    return logger, dev
