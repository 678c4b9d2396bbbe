"""One GPU per job on a workstation: a slot allocator built on file locks.

Snakemake counts GPUs (`--resources gpu=k` bounds how many GPU jobs run at once) but does not say which
GPU a job should use: without help every job would pick cuda:0. Here a job that is about to use CUDA
takes an exclusive lock (flock) on one lock file per visible GPU, in a directory shared by the jobs,
and restricts itself to that GPU by setting CUDA_VISIBLE_DEVICES before CUDA initialises (inside the job
the GPU is then cuda:0). The lock belongs to the process's open file: the operating system releases it
when the process ends, however it ends (SIGKILL included), so there are no stale locks to clean up; the
lock files themselves stay and are reused.

- Visible GPUs: the entries of CUDA_VISIBLE_DEVICES when it is set (so a scheduler's choice is kept: slots
  are taken among the GPUs it gave), else torch's count (NVML, which does not initialise CUDA). The
  environment variable GANAUG_GPUS=N overrides the count (GPUs 0..N-1), for tests and fake counts.
  No GPU: nothing happens, the job runs on the CPU.
- Lock directory: GANAUG_GPU_LOCK_DIR, else `.snakemake/gpu-slots` in the working directory (a Snakemake
  job runs in the workflow's working directory, so the jobs of one workflow share it). Set it to a common
  path (e.g. /tmp/ganaug-gpu-slots) to share the GPUs of a machine between several working directories.
  Lock names carry the host name, and the SLURM job id when there is one, so jobs on different nodes (or
  in different SLURM allocations, whose GPUs the scheduler keeps apart) never wait for each other.
- When every GPU is taken (more GPU jobs than GPUs: `--resources gpu=k` larger than the GPU count, or
  several workflows on one machine), the job WAITS for a slot, logging who holds them once a minute. With
  GANAUG_GPU_WAIT=seconds it gives up after that long with an error that names the holders.
- A job that runs on several GPUs (resources gpu=N, e.g. data-parallel GAN training) takes N locks at
  once, all or none, so that two such jobs never hold part of what each needs and wait for each other.
- A child process that inherits CUDA_VISIBLE_DEVICES from a job holding a slot (GANAUG_GPU_SLOT is set to
  it) uses those GPUs without locking again.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ganaug.io import InputError

ENV_COUNT = "GANAUG_GPUS"
ENV_LOCK_DIR = "GANAUG_GPU_LOCK_DIR"
ENV_WAIT = "GANAUG_GPU_WAIT"
ENV_HELD = "GANAUG_GPU_SLOT"  # set by the holder: the CUDA_VISIBLE_DEVICES value of its GPUs
DEFAULT_LOCK_DIR = Path(".snakemake") / "gpu-slots"

log_default = logging.getLogger("ganaug")


class GpuSlotTimeout(RuntimeError):
    """Every GPU stayed taken for longer than GANAUG_GPU_WAIT seconds."""


@dataclass
class GpuSlot:
    devices: list[str]  # CUDA_VISIBLE_DEVICES entries of its GPUs (indexes, or GPU-/MIG- UUIDs)
    lock_paths: list[Path]  # empty: inherited from the parent process, which holds the locks
    fds: list[int]

    @property
    def device(self) -> str:
        """What CUDA_VISIBLE_DEVICES is set to."""
        return ",".join(self.devices)


_held: GpuSlot | None = None


def _parse_visible(value: str) -> list[str]:
    """CUDA_VISIBLE_DEVICES entries as CUDA reads them: comma separated, up to the first invalid one
    ('-1' or an empty entry hides every GPU after it)."""
    out = []
    for entry in value.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):
            break
        out.append(entry)
    return out


def _nvidia_driver_present() -> bool:
    import ctypes.util
    import glob

    return bool(glob.glob("/dev/nvidia[0-9]*") or Path("/proc/driver/nvidia").exists()
                or ctypes.util.find_library("cuda"))


def _torch_gpu_count() -> int:
    """GPUs that torch sees, without initialising CUDA in this process (CUDA reads CUDA_VISIBLE_DEVICES
    once, at its initialisation, so it must not happen before a slot is chosen)."""
    import torch

    compiled = getattr(torch.cuda, "_is_compiled", None)
    if not (compiled() if compiled else torch.version.cuda or torch.version.hip):
        return 0
    count = -1
    nvml = getattr(torch.cuda, "_device_count_nvml", None)  # private, but what device_count() uses first
    if nvml is not None and not torch.version.hip:
        try:
            count = int(nvml())
        except Exception:
            count = -1
    if count >= 0:
        return count
    if not _nvidia_driver_present():
        return 0  # no driver: no GPU (and no 2 s child process on every job of a CPU machine)
    # NVML unavailable but a driver present: count in a child process, so that this one stays uninitialised
    import subprocess

    run = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
                         capture_output=True, text=True, timeout=300)
    try:
        return int(run.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        log_default.warning("could not count the GPUs (%s); assuming none", run.stderr.strip()[-500:])
        return 0


def visible_gpus() -> list[str]:
    """CUDA_VISIBLE_DEVICES entries of the GPUs this process may use (see the module doc)."""
    fake = os.environ.get(ENV_COUNT)
    if fake is not None and fake.strip() != "":
        try:
            n = int(fake)
            if n < 0:
                raise ValueError
        except ValueError:
            raise InputError(f"environment variable {ENV_COUNT}={fake!r}: must be a whole number >= 0 "
                             "(the number of GPUs)") from None
        return [str(i) for i in range(n)]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return _parse_visible(visible)
    return [str(i) for i in range(_torch_gpu_count())]


def lock_dir() -> Path:
    return Path(os.environ.get(ENV_LOCK_DIR) or DEFAULT_LOCK_DIR)


def _namespace() -> str:
    name = socket.gethostname().split(".")[0] or "host"
    job = os.environ.get("SLURM_JOB_ID")
    if job:
        name += f"-slurm{job}"
    return name


def _lock_name(device: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", f"{_namespace()}-gpu-{device}") + ".lock"


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # not inherited by exec'd programs (PEP 446)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise
    return fd


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


def _cuda_initialised() -> bool:
    torch = sys.modules.get("torch")
    return bool(torch is not None and hasattr(torch, "cuda") and torch.cuda.is_initialized())


def held() -> GpuSlot | None:
    """The slot this process holds, if any."""
    return _held


def _read_wait() -> float | None:
    value = os.environ.get(ENV_WAIT, "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise InputError(f"environment variable {ENV_WAIT}={value!r}: must be a number of seconds") from None


def acquire(n: int = 1, wait: float | None = None, poll: float = 0.5, log: logging.Logger | None = None,
            devices: list[str] | None = None) -> GpuSlot | None:
    """Take `n` free GPUs (all or none: a job never holds some while waiting for more) and restrict this
    process to them (CUDA_VISIBLE_DEVICES); None when there is no GPU or n = 0.

    wait: seconds to wait for free GPUs (None: GANAUG_GPU_WAIT, else without limit); past it,
    GpuSlotTimeout. Calling again while holding a slot returns it.
    """
    global _held
    log = log or log_default
    if _held is not None:
        return _held
    n = int(n)
    devices = visible_gpus() if devices is None else list(devices)
    if not devices or n <= 0:
        return None
    if n > len(devices):
        raise InputError(f"a job asks for {n} GPUs (resources gpu={n}) but {len(devices)} are visible "
                         f"({','.join(devices)}); give it at most {len(devices)}")
    if _cuda_initialised():
        raise RuntimeError("gpu_slots.acquire: CUDA is already initialised in this process, so "
                           "CUDA_VISIBLE_DEVICES can no longer choose its GPU; acquire a slot before "
                           "using CUDA")
    inherited = os.environ.get(ENV_HELD)
    if inherited is not None and ",".join(devices) == inherited:  # our parent holds these GPUs' locks
        _held = GpuSlot(devices[:n], [], [])
        os.environ["CUDA_VISIBLE_DEVICES"] = _held.device
        return _held
    wait = _read_wait() if wait is None else wait
    directory = lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    paths = {d: directory / _lock_name(d) for d in devices}
    t0 = last_report = time.monotonic()
    waiting = False
    while True:
        taken = []
        for device, path in paths.items():
            fd = _try_lock(path)
            if fd is not None:
                taken.append((device, path, fd))
                if len(taken) == n:
                    break
        if len(taken) == n:
            stamp = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}\n"
            for _, _, fd in taken:
                os.ftruncate(fd, 0)
                os.write(fd, stamp.encode())
            _held = GpuSlot([d for d, _, _ in taken], [p for _, p, _ in taken], [fd for _, _, fd in taken])
            os.environ["CUDA_VISIBLE_DEVICES"] = _held.device
            os.environ[ENV_HELD] = _held.device
            log.info("GPU slot: GPU %s of %d (%s), CUDA_VISIBLE_DEVICES=%s%s", _held.device, len(devices),
                     ",".join(devices), _held.device,
                     f" after waiting {time.monotonic() - t0:.0f}s" if waiting else "")
            return _held
        for _, _, fd in taken:  # not enough: hold none while waiting
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        now = time.monotonic()
        holders = "; ".join(f"GPU {d}: {_holder(p)}" for d, p in paths.items())
        what = "a free GPU" if n == 1 else f"{n} free GPUs"
        if wait is not None and now - t0 >= wait:
            raise GpuSlotTimeout(f"no {what} after {wait:g}s ({ENV_WAIT}) among {len(devices)} ({holders}; "
                                 f"locks in {directory}). Run at most as many GPU jobs as GPUs "
                                 "(snakemake --resources gpu=N)")
        if not waiting or now - last_report >= 60:
            log.info("waiting for %s: all %d are taken (%s); `--resources gpu=%d` avoids the wait",
                     what, len(devices), holders, len(devices))
            waiting, last_report = True, now
        time.sleep(poll)


def release() -> None:
    """Give the GPUs back before the process ends (the end of the process does it anyway)."""
    global _held
    if _held is None:
        return
    for fd in _held.fds:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    _held = None
    os.environ.pop(ENV_HELD, None)


def claim_device(preference: str, log: logging.Logger | None = None, gpus: int = 1) -> str:
    """The device preference of a job that is about to use torch, with `gpus` GPUs of its own taken when it
    will use CUDA: 'auto' takes them when there are GPUs (else, or with gpus = 0: 'cpu'); 'cuda' takes them
    and fails before any work when there is no GPU; 'cpu' and an explicit 'cuda:k' take none.
    Returns the preference for io.select_device."""
    pref = (preference or "auto").strip()
    if pref == "auto":
        return pref if acquire(gpus, log=log) is not None else "cpu"
    if pref == "cuda":
        if not visible_gpus():
            cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
            raise InputError(
                "device 'cuda' requested (GANAUG_DEVICE) but no GPU is visible"
                + (f" (CUDA_VISIBLE_DEVICES={cvd!r})" if cvd is not None else " (torch counts 0 GPUs)")
                + "; use GANAUG_DEVICE=auto or cpu")
        acquire(max(1, gpus), log=log)
    return pref
