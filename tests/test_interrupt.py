"""Interruption: the whole workflow is killed (SIGKILL to Snakemake and every job process: a power cut, a
killed terminal, a cluster pre-emption) while a GAN and a classifier are training; started again, it loses
no finished job and both long jobs continue from their last snapshot / checkpoint.

Snakemake leaves its lock behind when killed: `snakemake --unlock` comes first, as for a user. The
profile's rerun-incomplete makes Snakemake re-run the interrupted jobs (it deletes their declared outputs);
GAN snapshots and the classifier checkpoint are not declared outputs, so they survive and the jobs resume.

It works on a copy of the session's finished TINY study, in which PGAN and the ancillary classifier are
removed and made longer (many snapshots, many epochs), and one quick job (a test set) is to be redone:
that one finishes before the kill and must not run again.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ganaug.io import load_torch
from test_workflow import TINY, write_config

CFG = copy.deepcopy(TINY)
CFG["gans"]["pgan"].update({"total_kimg": 2.0, "snapshot_kimg": 0.064})
# the ancillary classifier cannot finish before the kill, however slow the GAN's first snapshot is on a loaded
# machine; "epochs" is a resumable key, so the rerun asks for a few epochs more than the checkpoint holds
CFG["ancillary"] = {"epochs": 100_000, "early_stopping_patience": 100_000}
EXTRA_EPOCHS = 3
QUICK = "results/data/testsets/clinical.csv"
TARGETS = ["results/gans/pgan/training.json", "results/ancillary/model.pt", QUICK]
FINISHED = ["results/data/index/toy.csv", "results/data/splits/train.csv", "results/data/splits/val.csv",
            "results/data/cache/splits/train_16px.npy", "results/data/cache/splits/val_16px.npy"]


def _descendants(pid: int) -> list[int]:
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill_workflow(proc: subprocess.Popen) -> None:
    """SIGKILL Snakemake's process group and every process under it (jobs in a session of their own too)."""
    tree = _descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() and "zombie" not in _state(p) for p in tree):
        assert time.monotonic() < deadline, "job processes survived the kill"
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "zombie"
    return "zombie" if state == "Z" else "alive"


def test_killed_workflow_resumes_gan_and_classifier(frozen_workflow, tiny_study, tmp_path):
    work = tmp_path / "study"
    shutil.copytree(tiny_study, work, symlinks=True)
    for d in ("results/gans/pgan", "results/ancillary"):
        shutil.rmtree(work / d)
    for f in ("logs/gans/train_gan/pgan.log", "logs/classifier/train_ancillary.log", QUICK):
        (work / f).unlink()
    write_config(work, CFG)
    gan_dir, cls_dir = work / "results/gans/pgan", work / "results/ancillary"
    mtimes = {f: (work / f).stat().st_mtime_ns for f in FINISHED}
    snakemake = frozen_workflow.cmd + ["-d", str(work)]
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as log:  # 3 cores: the two long jobs and the quick one at once
        proc = subprocess.Popen(snakemake + ["--cores", "3", *TARGETS], stdout=log, stderr=subprocess.STDOUT,
                                env=frozen_workflow.env, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not (list(gan_dir.glob("snapshot-*.pt")) and (cls_dir / "checkpoint.pt").exists()
                   and "(Rule: testset)" in first_log.read_text()):
            if proc.poll() is not None:
                raise AssertionError(f"ended before the kill:\n{first_log.read_text()[-4000:]}")
            assert time.monotonic() < deadline, f"not there after 600 s:\n{first_log.read_text()[-4000:]}"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            _kill_workflow(proc)
    assert not (gan_dir / "training.json").exists(), "the GAN finished before the kill: lengthen its training"
    snapshots_at_kill = sorted(p.name for p in gan_dir.glob("snapshot-*.pt"))
    mtimes[QUICK] = (work / QUICK).stat().st_mtime_ns
    epochs_at_kill = load_torch(cls_dir / "checkpoint.pt")["state"]["epoch"]
    rerun_cfg = copy.deepcopy(CFG)
    rerun_cfg["ancillary"]["epochs"] = epochs_at_kill + EXTRA_EPOCHS
    write_config(work, rerun_cfg)

    unlock = subprocess.run(snakemake + ["--unlock"], capture_output=True, text=True, timeout=300,
                            env=frozen_workflow.env)
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    rerun = subprocess.run(snakemake + ["--cores", "2", *TARGETS], capture_output=True, text=True,
                           timeout=900, env=frozen_workflow.env)
    out = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, out[-5000:]

    # no finished job ran again: only the two interrupted ones were scheduled, finished files are untouched
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:", 1)[1], flags=re.M))
    assert stats == {"train_gan": "1", "train_ancillary": "1", "total": "2"}, out[-5000:]
    assert {f: (work / f).stat().st_mtime_ns for f in mtimes} == mtimes

    gan_log = (work / "logs/gans/train_gan/pgan.log").read_text()
    resumed = re.findall(r"resuming from (snapshot-\S+)", gan_log)
    assert resumed and resumed[-1] in snapshots_at_kill, gan_log[-3000:]
    assert (gan_dir / "training.json").exists()
    cls_log = (work / "logs/classifier/train_ancillary.log").read_text()
    epochs = re.findall(r"resumed from \S+ after epoch (\d+)", cls_log)
    assert epochs and int(epochs[-1]) == epochs_at_kill >= 1, cls_log[-3000:]
    history = (cls_dir / "history.csv").read_text().strip().splitlines()
    assert len(history) - 1 == epochs_at_kill + EXTRA_EPOCHS  # every epoch once, none lost or repeated
