"""The SLURM profile (profiles/slurm) against a real Slurm scheduler: dev/slurm_local.py starts a one-node
cluster, a small study runs through `--workflow-profile profiles/slurm`, every job goes through sbatch with
the profile's partition, memory and GPU request, and its results equal, bit for bit, those of a local run of
the same config. A profile that names no rule of the workflow fails before any job.

The cluster test needs root, Debian and the slurm-wlm / munge packages (installed with apt-get if missing) and
is skipped, saying why, where it cannot run."""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_workflow import REPO, SNAKEMAKE, TINY, write_config

PROFILE = REPO / "profiles" / "slurm"
OVERLAY = REPO / "tests" / "slurm_profile"
# the Snakefile's target rules: no job of their own, so no resources in the profile
TARGET_RULES = {"all", "prepare_data", "gans", "pools", "trainsets", "runs", "figures"}

needs_plugin = pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason="snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')",
)

# TINY cut down to what runs in about 4 minutes on 2 cores: one test set, no GAN, the baseline experiment
# with 2 replicates: 15 jobs over 10 DAG levels. Each SLURM job parses the workflow twice (the sbatch step,
# then the srun step) at about 6 s of CPU each, so the job count sets the test's time. train_classifier and
# evaluate go to the profile's GPU partition; every other rule's entry is checked by the dry run below.
SMALL = copy.deepcopy(TINY)
SMALL["datasets"] = {"toy": TINY["datasets"]["toy"]}
SMALL["testsets"] = {"indist": {"split": "test"}}
SMALL["gans"] = {}
SMALL["experiments"] = {"augmentation": [{"ratio": "1:0", "group": "baseline"}]}

# Both runs pin the device and the core count: a job's torch thread count is its `threads`, which some rules
# derive from --cores, and another thread count can change float reductions, hence probabilities and AUCs.
ENV = {**os.environ, "GANAUG_DEVICE": "cpu"}
CORES = "2"


def _load_slurm_local():
    spec = importlib.util.spec_from_file_location("slurm_local", REPO / "dev" / "slurm_local.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


slurm_local = _load_slurm_local()


def run_snakemake(workdir: Path, *args, limit: int) -> tuple[subprocess.CompletedProcess, float]:
    """Snakemake under `timeout -s KILL`: a SLURM run that cannot query job states waits forever and ignores
    SIGTERM. Returns the process and its wall time."""
    t0 = time.monotonic()
    cmd = ["timeout", "-s", "KILL", str(limit), *SNAKEMAKE, "-d", str(workdir), *args]
    run = subprocess.run(cmd, cwd=workdir, env=ENV, capture_output=True, text=True, timeout=limit + 30)
    return run, time.monotonic() - t0


def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


@pytest.fixture(scope="module")
def cluster():
    """The local cluster, held alone by this session, stopped afterwards if this session started it (also
    after a failed or half-done start)."""
    reason = slurm_local.why_not()
    if reason:
        pytest.skip(f"no local Slurm cluster: {reason}")
    info = {"started": {"?": None}}  # until start() says otherwise: stop whatever a failing start left
    try:
        with slurm_local.exclusive():
            try:
                info = slurm_local.start()
                yield info
            finally:
                if info["started"]:
                    slurm_local.stop()
    except slurm_local.SlurmUnavailable as e:
        pytest.skip(f"no local Slurm cluster: {e}")


def scontrol_jobs(name: str) -> list[dict]:
    """Every job of the cluster with job name `name` (finished ones stay listed for MinJobAge = 600 s)."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, timeout=30).stdout
    jobs = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if line.strip()]
    return [j for j in jobs if j.get("JobName") == name]


def megabytes(text: str) -> float:
    """Slurm's memory notation (2000M, 31.25G) in MB."""
    return float(text[:-1]) * {"M": 1, "G": 1024, "T": 1024**2}[text[-1]]


def minutes(text: str) -> int:
    """Slurm's time notation ([D-]HH:MM:SS) in minutes."""
    days, _, hms = text.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + s // 60


def thread_lines(workdir: Path) -> dict:
    """Per job log, the 'device ..., N CPU thread(s)' line the job wrote."""
    lines = {}
    for log in (workdir / "logs").rglob("*.log"):
        found = re.findall(r"device \S+, \d+ CPU thread\(s\)", log.read_text(errors="replace"))
        if found:
            lines[str(log.relative_to(workdir))] = found
    return lines


@needs_plugin
@pytest.mark.workflow
def test_study_on_slurm_equals_local_run(cluster, tmp_path):
    local, on_slurm = tmp_path / "local", tmp_path / "slurm"
    for d in (local, on_slurm):
        write_config(d, SMALL)
    # the two runs side by side: the SLURM run mostly waits for the scheduler's polls
    with ThreadPoolExecutor(1) as pool:
        local_future = pool.submit(run_snakemake, local, "--cores", CORES, "--workflow-profile",
                                   str(REPO / "profiles" / "default"), limit=300)
        slurm_run, slurm_s = run_snakemake(on_slurm, "--workflow-profile", str(PROFILE), "--profile",
                                           str(OVERLAY), "--cores", CORES, limit=420)
        local_run, local_s = local_future.result()
    out = slurm_run.stdout + slurm_run.stderr
    assert local_run.returncode == 0, (local_run.stdout + local_run.stderr)[-5000:]
    assert slurm_run.returncode == 0, f"SLURM run failed (rc {slurm_run.returncode}):\n{out[-8000:]}"

    # every job went through sbatch, and SLURM says each one completed
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    n_jobs = len(list((on_slurm / "benchmarks").rglob("*.tsv")))
    assert n_jobs >= 14 and len(submitted) == n_jobs, (n_jobs, len(submitted))
    assert n_jobs == len(list((local / "benchmarks").rglob("*.tsv")))
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    jobs = scontrol_jobs(run_id)
    assert sorted(j["JobId"] for j in jobs) == sorted(submitted)
    assert {j["JobState"] for j in jobs} == {"COMPLETED"}

    # each job asked for what the profile's set-resources says for its rule, and for as many CPUs as it used
    resources = profile()["set-resources"]
    threads = {}
    for log, lines in thread_lines(on_slurm).items():
        rule = next(p for p in reversed(Path(log).with_suffix("").parts) if p in resources)
        threads[rule] = int(re.search(r"(\d+) CPU", lines[0]).group(1))
    seen = set()
    for job in jobs:
        rule = re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", job["Comment"]).group(1)
        want = resources[rule]
        seen.add(rule)
        assert job["Partition"] == want["slurm_partition"], (rule, job["Partition"])
        assert megabytes(job["MinMemoryNode"]) == want["mem_mb"], (rule, job["MinMemoryNode"])
        assert minutes(job["TimeLimit"]) == want["runtime"], (rule, job["TimeLimit"])
        assert ("gpu" in job.get("TresPerJob", "")) == bool(want.get("gpu")), (rule, job.get("TresPerJob"))
        if rule in threads:  # torch jobs log their thread count
            assert int(job["NumCPUs"]) == threads[rule], (rule, job["NumCPUs"], threads[rule])
    assert {"make_toyderm", "split", "cache_images", "train_classifier", "evaluate", "stats"} <= seen

    # same thread counts in every job, so the same numbers
    assert thread_lines(on_slurm) == thread_lines(local) != {}
    # bit for bit: the AUCs, and below them every predicted probability
    predictions = sorted((local / "results").rglob("predictions/*.csv"))
    tables = ["auc.csv", "stats.csv"] + [str(p.relative_to(local / "results")) for p in predictions]
    assert len(tables) == 2 + 2
    for table in tables:
        pd.testing.assert_frame_equal(pd.read_csv(on_slurm / "results" / table),
                                      pd.read_csv(local / "results" / table), check_exact=True, obj=table)
    print(f"\n{n_jobs} jobs: local run {local_s:.0f} s, SLURM run {slurm_s:.0f} s (side by side, 2 cores)")


@needs_plugin
def test_profile_names_every_rule_and_dry_runs(tmp_path):
    """The profile has resources for every rule that runs a job, and the paper's DAG builds with it."""
    rules = subprocess.run(SNAKEMAKE + ["--list-rules"], cwd=REPO, capture_output=True, text=True,
                           timeout=120)
    assert rules.returncode == 0, rules.stderr[-2000:]
    names = {line.split()[0] for line in rules.stdout.splitlines() if line[:1].isalpha()} - TARGET_RULES
    assert set(profile()["set-resources"]) == names
    run, _ = run_snakemake(tmp_path, "-n", "--workflow-profile", str(PROFILE), "--configfile",
                           str(REPO / "config" / "paper.yaml"), limit=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "train_classifier" in run.stdout


@needs_plugin
@pytest.mark.parametrize("key", ["set-resources", "set-threads"])
def test_profile_naming_an_unknown_rule_fails_before_any_job(tmp_path, key):
    """Snakemake itself ignores a set-resources entry for a rule that does not exist; the workflow stops."""
    bad = profile()
    if key == "set-resources":
        bad["set-resources"]["train_gans"] = {"mem_mb": 64000}
    else:
        bad["set-threads"] = {"train_gans": 4}
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "config.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
    write_config(tmp_path, SMALL)
    run, _ = run_snakemake(tmp_path, "-n", "--workflow-profile", str(tmp_path / "profile"), limit=120)
    assert run.returncode != 0
    err = run.stdout + run.stderr
    assert "name no rule of this workflow: 'train_gans' (did you mean 'train_gan'?)" in err, err[-3000:]
    assert not (tmp_path / "results").exists() and not (tmp_path / ".snakemake" / "slurm_logs").exists()


def test_stop_removes_only_the_configs_it_wrote(tmp_path, monkeypatch):
    """A slurm.conf naming a controller that is down makes `scontrol` (run by the executor plugin whenever
    Snakemake starts) wait ~9 s: `stop` removes its own, and never a conf someone else wrote."""
    ours, theirs = tmp_path / "slurm.conf", tmp_path / "gres.conf"
    ours.write_text(slurm_local.MARKER + "\nClusterName=x\n")
    theirs.write_text("NodeName=somebody's\n")
    monkeypatch.setattr(slurm_local, "CONF", ours)
    monkeypatch.setattr(slurm_local, "GRES_CONF", theirs)
    monkeypatch.setattr(slurm_local, "STATE_FILE", tmp_path / "state.json")
    assert slurm_local.stop() == []
    assert not ours.exists() and theirs.read_text() == "NodeName=somebody's\n"
