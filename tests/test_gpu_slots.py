"""GPU slots: each GPU job gets a GPU of its own (a lock per GPU, CUDA_VISIBLE_DEVICES set before CUDA
starts). Real processes race for fake GPU counts (GANAUG_GPUS=N); no GPU is needed."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ganaug import gpu_slots
from ganaug.io import InputError

# a job: take a slot, say which and when, hold it, say when it lets go (the end of the process releases it)
WORKER = """
import json, logging, sys, time
from ganaug import gpu_slots
logging.basicConfig(level=logging.INFO)
hold, out = float(sys.argv[1]), sys.argv[2]
slot = gpu_slots.acquire(int(sys.argv[3]) if len(sys.argv) > 3 else 1, poll=0.05)
import os
start = time.time()
print("acquired", slot.device, os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
time.sleep(hold)
with open(out, "w") as f:
    json.dump({"device": slot.device, "cvd": os.environ["CUDA_VISIBLE_DEVICES"], "start": start,
               "end": time.time()}, f)
"""


def _env(lock_dir: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CUDA_VISIBLE_DEVICES", "GANAUG_DEVICE", "GANAUG_GPU_SLOT", "GANAUG_GPU_WAIT",
                        "GANAUG_GPUS", "SLURM_JOB_ID")}
    env.update({"GANAUG_GPU_LOCK_DIR": str(lock_dir), **{k: str(v) for k, v in extra.items()}})
    return env


def _spawn(code: str, *args, env: dict, cwd=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 60) -> str:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no '{prefix}' line; stderr: {proc.stderr.read()[-2000:]}")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for k in ("CUDA_VISIBLE_DEVICES", "GANAUG_DEVICE", "GANAUG_GPU_SLOT", "GANAUG_GPU_WAIT", "GANAUG_GPUS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("GANAUG_GPU_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # start_job replaces it
    yield monkeypatch
    gpu_slots.release()
    logging.getLogger("ganaug").handlers.clear()  # start_job's handlers (a file in tmp_path)


def test_visible_gpus(clean_env):
    clean_env.setenv("GANAUG_GPUS", "3")
    assert gpu_slots.visible_gpus() == ["0", "1", "2"]
    clean_env.delenv("GANAUG_GPUS")
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # a scheduler's choice: slots among its GPUs
    assert gpu_slots.visible_gpus() == ["2", "3"]
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "GPU-8a1b,MIG-0c2d")
    assert gpu_slots.visible_gpus() == ["GPU-8a1b", "MIG-0c2d"]
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "1,-1,0")  # CUDA stops at the first invalid entry
    assert gpu_slots.visible_gpus() == ["1"]
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_slots.visible_gpus() == []
    clean_env.setenv("GANAUG_GPUS", "two")
    with pytest.raises(InputError, match="GANAUG_GPUS"):
        gpu_slots.visible_gpus()


def test_no_gpu_changes_nothing(clean_env, tmp_path):
    clean_env.setenv("GANAUG_GPUS", "0")
    assert gpu_slots.acquire() is None
    assert gpu_slots.claim_device("auto") == "cpu"
    assert gpu_slots.claim_device("cpu") == "cpu"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert not (tmp_path / "locks").exists()


def test_cuda_request_without_gpu_fails_before_work(clean_env, tmp_path):
    from ganaug.progress import start_job

    clean_env.setenv("GANAUG_GPUS", "0")
    clean_env.setenv("GANAUG_DEVICE", "cuda")
    with pytest.raises(InputError, match="GANAUG_DEVICE.*no GPU is visible"):
        start_job(tmp_path / "job.log", device="auto")
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "")  # the real count: CUDA hides every GPU
    clean_env.delenv("GANAUG_GPUS")
    with pytest.raises(InputError, match="CUDA_VISIBLE_DEVICES=''"):
        start_job(tmp_path / "job.log", device="auto")
    clean_env.setenv("GANAUG_DEVICE", "cuda:x")
    with pytest.raises(InputError, match="'cuda:x'"):
        start_job(tmp_path / "job.log", device="auto")


def test_concurrent_jobs_never_share_a_gpu_and_the_third_waits(tmp_path):
    """3 jobs on 2 GPUs: two start at once on different GPUs, the third waits until one of them ends."""
    env = _env(tmp_path / "locks", GANAUG_GPUS=2)
    outs = [tmp_path / f"job{i}.json" for i in range(3)]
    procs = [_spawn(WORKER, 1.5, out, env=env) for out in outs[:2]]
    for p in procs:  # both GPUs taken before the third job starts
        _wait_for_line(p, "acquired")
    procs.append(_spawn(WORKER, 0.1, outs[2], env=env))
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        errs.append(err)
    jobs = [json.loads(o.read_text()) | {"log": err} for o, err in zip(outs, errs)]
    jobs.sort(key=lambda j: j["start"])
    assert all(j["cvd"] == j["device"] for j in jobs)  # each job sees its GPU only
    assert {j["device"] for j in jobs[:2]} == {"0", "1"}
    for a in jobs:
        for b in jobs:
            if a is not b and a["device"] == b["device"]:
                assert a["end"] <= b["start"] or b["end"] <= a["start"], f"GPU {a['device']} shared"
    assert jobs[2]["start"] >= min(j["end"] for j in jobs[:2])  # waited for a GPU to be free
    assert "waiting for a free GPU: all 2 are taken" in jobs[2]["log"]
    assert "waiting" not in jobs[0]["log"] + jobs[1]["log"]


def test_many_jobs_race_for_two_gpus(tmp_path):
    """6 jobs started together on 2 GPUs: at every instant at most one job per GPU."""
    env = _env(tmp_path / "locks", GANAUG_GPUS=2)
    outs = [tmp_path / f"job{i}.json" for i in range(6)]
    procs = [_spawn(WORKER, 0.3, out, env=env) for out in outs]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    jobs = [json.loads(o.read_text()) for o in outs]
    for dev in ("0", "1"):
        spans = sorted((j["start"], j["end"]) for j in jobs if j["device"] == dev)
        assert all(e1 <= s2 for (_, e1), (s2, _) in zip(spans, spans[1:])), f"GPU {dev} shared: {spans}"
    assert {j["device"] for j in jobs} == {"0", "1"}


def test_timeout_names_the_holders(tmp_path):
    env = _env(tmp_path / "locks", GANAUG_GPUS=1)
    holder = _spawn(WORKER, 30, tmp_path / "holder.json", env=env)
    try:
        _wait_for_line(holder, "acquired")
        code = "from ganaug import gpu_slots; gpu_slots.acquire(poll=0.05)"
        run = subprocess.run([sys.executable, "-c", code], env={**env, "GANAUG_GPU_WAIT": "0.5"},
                             capture_output=True, text=True, timeout=60)
        assert run.returncode != 0
        assert "GpuSlotTimeout" in run.stderr and "GANAUG_GPU_WAIT" in run.stderr
        assert f"pid {holder.pid}" in run.stderr  # who holds the GPU
    finally:
        holder.kill()
        holder.wait()


def test_lock_is_released_when_the_holder_is_killed(tmp_path):
    env = _env(tmp_path / "locks", GANAUG_GPUS=1)
    holder = _spawn(WORKER, 300, tmp_path / "holder.json", env=env)
    try:
        line = _wait_for_line(holder, "acquired")
        assert line.split()[1] == "0"
        code = "from ganaug import gpu_slots; gpu_slots.acquire()"
        taken = subprocess.run([sys.executable, "-c", code], env={**env, "GANAUG_GPU_WAIT": "0.3"},
                               capture_output=True, text=True, timeout=60)
        assert taken.returncode != 0 and "GpuSlotTimeout" in taken.stderr
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert holder.returncode == -signal.SIGKILL
    after = _spawn(WORKER, 0, tmp_path / "after.json", env={**env, "GANAUG_GPU_WAIT": "5"})
    _, err = after.communicate(timeout=60)
    assert after.returncode == 0, err
    assert json.loads((tmp_path / "after.json").read_text())["device"] == "0"


def test_child_of_a_holder_uses_its_gpu_without_waiting(tmp_path):
    """A job's subprocess inherits CUDA_VISIBLE_DEVICES: it must not wait for the lock its parent holds."""
    env = _env(tmp_path / "locks", GANAUG_GPUS=2)
    holder = _spawn(WORKER, 30, tmp_path / "holder.json", env=env)
    try:
        device = _wait_for_line(holder, "acquired").split()[1]
        code = ("from ganaug import gpu_slots; s = gpu_slots.acquire(); "
                "print(s.device, s.lock_paths)")
        child_env = {k: v for k, v in env.items() if k != "GANAUG_GPUS"}
        child_env.update(CUDA_VISIBLE_DEVICES=device, GANAUG_GPU_SLOT=device, GANAUG_GPU_WAIT="1")
        run = subprocess.run([sys.executable, "-c", code], env=child_env, capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 0, run.stderr
        assert run.stdout.split() == [device, "[]"]  # no lock of its own
    finally:
        holder.kill()
        holder.wait()


START_JOB = """
import os, sys
from ganaug.progress import start_job
log, dev = start_job(sys.argv[1], device="auto")
print("device", dev, os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
"""


def test_start_job_takes_a_free_gpu(tmp_path):
    """The hook in start_job: with GPU 0 taken, a job gets GPU 1, in the default lock directory
    .snakemake/gpu-slots of its working directory."""
    env = _env(tmp_path / "unused", GANAUG_GPUS=2)
    del env["GANAUG_GPU_LOCK_DIR"]
    holder = _spawn(WORKER, 60, tmp_path / "holder.json", env=env, cwd=tmp_path)
    try:
        assert _wait_for_line(holder, "acquired").split()[1] == "0"
        run = subprocess.run([sys.executable, "-c", START_JOB, str(tmp_path / "job.log")], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        _, dev, cvd = run.stdout.split()
        assert cvd == "1"
        import torch

        assert dev in ("cpu", "cuda") and (dev == "cpu" or torch.cuda.is_available())
        assert "GPU slot: GPU 1 of 2" in (tmp_path / "job.log").read_text()
        assert len(list((tmp_path / ".snakemake/gpu-slots").glob("*-gpu-*.lock"))) == 2
    finally:
        holder.kill()
        holder.wait()


def test_multi_gpu_jobs_take_all_or_nothing(tmp_path):
    """A job on 2 GPUs waits for 2 free ones without holding one meanwhile: a 1-GPU job started later gets
    the free GPU at once; jobs never share a GPU."""
    env = _env(tmp_path / "locks", GANAUG_GPUS=3)
    first = _spawn(WORKER, 2.0, tmp_path / "a.json", 2, env=env)  # GPUs 0,1
    try:
        assert _wait_for_line(first, "acquired").split()[1] == "0,1"
        pair = _spawn(WORKER, 0.1, tmp_path / "b.json", 2, env=env)  # needs 2: waits for the first
        time.sleep(0.5)
        single = _spawn(WORKER, 0.1, tmp_path / "c.json", 1, env={**env, "GANAUG_GPU_WAIT": "1.0"})
        _, err = single.communicate(timeout=60)
        assert single.returncode == 0, err  # GPU 2 was free: the waiting pair did not hold it
        _, err = pair.communicate(timeout=60)
        assert pair.returncode == 0, err
    finally:
        first.kill()
        first.wait()
    a, b, c = (json.loads((tmp_path / f"{x}.json").read_text()) for x in "abc")
    assert a["cvd"] == "0,1" and c["cvd"] == "2" and len(b["cvd"].split(",")) == 2
    assert b["start"] >= a["end"]  # only one GPU was free while the first job ran
    assert c["start"] < a["end"]


def test_more_gpus_than_visible_is_an_error(clean_env):
    clean_env.setenv("GANAUG_GPUS", "2")
    with pytest.raises(InputError, match="asks for 3 GPUs.*2 are visible"):
        gpu_slots.acquire(3)
    assert gpu_slots.acquire(0) is None
