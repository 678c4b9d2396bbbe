"""`replicates_per_job: all` (one build_trainset and one train_classifier job per experiment, its replicates
one after the other in one process) writes the same files, with the same numbers, as one job per replicate."""

from __future__ import annotations

import copy
import re
import subprocess

import pandas as pd
import pytest
import torch
from test_workflow import TINY, write_config

# the baseline only (no GAN): data, train sets and the classifiers of 2 replicates
SMALL = copy.deepcopy(TINY)
SMALL["datasets"] = {"toy": TINY["datasets"]["toy"]}
SMALL["testsets"] = {"indist": {"split": "test"}}
SMALL["gans"] = {}
SMALL["experiments"] = {"augmentation": [{"ratio": "1:0", "group": "baseline"}]}
RUNS = [f"results/runs/1x0/rep{r}" for r in range(SMALL["replicates"])]


def _train(frozen_workflow, workdir, mode):
    write_config(workdir, {**SMALL, "replicates_per_job": mode})
    targets = [f"{run}/{name}" for run in RUNS for name in ("model.pt", "history.csv")]
    run = subprocess.run(frozen_workflow.cmd + ["-d", str(workdir), "--cores", "2", *targets],
                         env={**frozen_workflow.env, "GANAUG_DEVICE": "cpu"}, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return dict(re.findall(r"^(\w+)\s+(\d+)$", run.stdout + run.stderr, flags=re.M))


@pytest.mark.workflow
def test_one_job_per_experiment_equals_one_job_per_replicate(frozen_workflow, tmp_path):
    apart, together = tmp_path / "apart", tmp_path / "together"
    assert _train(frozen_workflow, apart, 1)["train_classifier"] == "2"
    jobs = _train(frozen_workflow, together, "all")
    assert jobs["train_classifier"] == jobs["build_trainset"] == "1"
    assert (together / "benchmarks/classifier/train_classifier/1x0.tsv").exists()
    for r in range(SMALL["replicates"]):
        trainset = f"results/trainsets/1x0/rep{r}.csv"
        pd.testing.assert_frame_equal(pd.read_csv(apart / trainset), pd.read_csv(together / trainset))
    for run in RUNS:
        a, b = torch.load(apart / run / "model.pt"), torch.load(together / run / "model.pt")
        assert a["epoch"] == b["epoch"] and a["val_loss"] == b["val_loss"]
        assert a["state_dict"].keys() == b["state_dict"].keys()
        for k, v in a["state_dict"].items():
            assert torch.equal(v, b["state_dict"][k]), (run, k)
        pd.testing.assert_frame_equal(pd.read_csv(apart / run / "history.csv").drop(columns="seconds"),
                                      pd.read_csv(together / run / "history.csv").drop(columns="seconds"),
                                      check_exact=True)
        # each replicate logs to its own file, as a job of its own would
        log = together / (run.replace("results/runs", "logs/classifier/train_classifier") + ".log")
        assert "epoch 1.0/" in log.read_text()
    # replicates differ (each its own seed and train set): the comparison above can tell runs apart
    a0, a1 = (torch.load(apart / run / "model.pt")["state_dict"] for run in RUNS)
    assert any(not torch.equal(a0[k], a1[k]) for k in a0 if a0[k].is_floating_point())
