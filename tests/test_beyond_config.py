"""The overlays beyond the paper (config/beyond.yaml on config/paper.yaml, config/beyond_toy.yaml on the
default config): Snakemake merges them as documented and the DAG trains the diffusion model beside the
study's four GANs, which `all` still means."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ganaug.toyderm import make_external_pool

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
EXTERNAL = "mygen"  # the placeholder external pool of config/beyond.yaml


def dry_run(workdir, *configfiles):
    run = subprocess.run(SNAKEMAKE + ["-d", str(workdir), "-n", "--configfile", *map(str, configfiles)],
                         capture_output=True, text=True, timeout=300)
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", run.stdout, flags=re.M))
    return run, stats


def without_external(path: Path, out: Path) -> Path:
    """A copy of the overlay at `path` without the external pool and its experiments."""
    cfg = yaml.safe_load(path.read_text())
    del cfg["gans"][EXTERNAL]
    for app, rows in cfg["experiments"].items():
        cfg["experiments"][app] = [e for e in rows if e.get("gan") != EXTERNAL]
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def test_overlays_restate_the_lists_they_replace():
    """Lists are replaced, not merged: each overlay's experiment lists hold every experiment of its base."""
    for base, overlay in (("paper.yaml", "beyond.yaml"), ("config.yaml", "beyond_toy.yaml")):
        b = yaml.safe_load((REPO / "config" / base).read_text())
        o = yaml.safe_load((REPO / "config" / overlay).read_text())
        for app, rows in b["experiments"].items():
            assert all(e in o["experiments"][app] for e in rows), (overlay, app)
        added = [e for app in o["experiments"] for e in o["experiments"][app] if e not in b["experiments"][app]]
        assert added and all(e["gan"] in ("diffusion", EXTERNAL, "toypool") for e in added), overlay
        assert set(o) <= {"gans", "experiments"}  # nothing else of the base is changed


def test_toy_overlay_dry_run(tmp_path):
    make_external_pool(tmp_path / "external/toypool", 2, seed=1, size=32)  # its counts are checked at import
    run, stats = dry_run(tmp_path, REPO / "config/config.yaml", REPO / "config/beyond_toy.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    assert stats["train_gan"] == "5" and stats["select_checkpoint"] == "5" and stats["generate_pool"] == "5"
    assert stats["import_pool"] == "1" and stats["external_fid"] == "1"
    assert "results/gans/diffusion/training.json" in run.stdout
    # the default study's 27 experiments + 1:1/2 dif + 1:1/2 toy, an experiment's replicates in one job
    assert stats["train_classifier"] == "29"
    assert "diffusion 6 kimg" in run.stderr + run.stdout  # the study summary names it


def test_paper_overlay_dry_run_with_the_diffusion_model(tmp_path):
    overlay = without_external(REPO / "config/beyond.yaml", tmp_path / "beyond.yaml")
    run, stats = dry_run(tmp_path, REPO / "config/paper.yaml", overlay)
    assert run.returncode == 0, run.stderr[-3000:]
    # the four GANs + diffusion; 27 paper experiments + 1:1/2 dif + 8 anonymization runs with dif
    assert stats["train_gan"] == "5" and "results/gans/diffusion/training.json" in run.stdout
    assert stats["train_classifier"] == str(36 * 10) and stats["evaluate"] == "36"
    assert "toyderm" not in run.stdout


def test_paper_overlay_dry_run_with_an_external_pool(tmp_path):
    run, _ = dry_run(tmp_path, REPO / "config/paper.yaml", REPO / "config/beyond.yaml")
    assert run.returncode != 0  # the placeholder path is still empty: the config check says so
    assert f"gans.{EXTERNAL}.path: not found: external/{EXTERNAL}" in run.stdout + run.stderr
    make_external_pool(tmp_path / "external" / EXTERNAL, 2, seed=1, size=32)
    run, stats = dry_run(tmp_path, REPO / "config/paper.yaml", REPO / "config/beyond.yaml")
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert stats["train_gan"] == "5" and stats["train_classifier"] == str(37 * 10)
    assert stats["import_pool"] == "1" and stats["external_fid"] == "1"
