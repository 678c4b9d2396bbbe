"""The workflow itself: Snakemake runs the whole DAG on a tiny config, every public output is checked;
bad configs fail before any job runs; test sets feed nothing upstream of `evaluate`."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]

TINY = {
    "seed": 7,
    "replicates": 2,
    "datasets": {
        "toy": {"kind": "toyderm", "n": 200, "image_size": 32, "melanoma_fraction": 0.3, "difficulty": 0.3,
                "label_noise": 0.0, "diagnoses": {"nevus": 1.0}},
        "toy_clinic": {"kind": "toyderm", "n": 40, "image_size": 32, "melanoma_fraction": 0.3,
                       "domain": "clinical", "diagnoses": {"nevus": 1.0}},
    },
    "split": {"dataset": "toy", "fractions": {"train": 0.6, "val": 0.2, "test": 0.2}},
    "testsets": {"indist": {"split": "test"}, "clinical": {"dataset": "toy_clinic"}},
    "gans": {"stylegan2": {"resolution": 16, "z_dim": 32, "w_dim": 32, "mapping_layers": 1, "channel_base": 256,
                           "channel_max": 16, "batch": 8, "total_kimg": 0.064, "snapshot_kimg": 0.032,
                           "ada": True},
             "pgan": {"resolution": 16, "z_dim": 16, "channel_base": 128, "channel_max": 16, "batch": 8,
                      "stable_kimg": 0.016, "transition_kimg": 0.016, "total_kimg": 0.064, "snapshot_kimg": 0.032},
             "pix2pixhd": {"resolution": 16, "ngf": 8, "n_blocks": 1, "ndf": 8, "batch": 8, "total_kimg": 0.064,
                           "decay_kimg": 0.032, "snapshot_kimg": 0.032},
             "spade": {"resolution": 16, "ngf": 8, "spade_hidden": 8, "ndf": 8, "batch": 8, "total_kimg": 0.064,
                       "snapshot_kimg": 0.032},
             # a user's generator: fresh toyderm images at 32 px (resized to the study's 16 with a warning),
             # written by write_config (TOY_POOL)
             "toypool": {"kind": "external", "path": "external/toypool", "abbreviation": "toy"}},
    "fid": {"n_images": 64, "noise_seeds": 2, "grid_per_class": 2, "kid_subset_size": 32},
    "pool": {"n_per_class": 150, "shard_size": 100},
    "sampling": {"diverse_threshold": 2},
    # the built-in ResNet: no job imports timm (about 2 s of CPU each, ~30 jobs here and in test_slurm)
    "classifier": {"model": "ganaug:resnet", "model_kwargs": {"channels": [8, 16], "layers": [1, 1],
                                                              "stem_width": 8},
                   "cache_size": 16, "input_size": 16, "epochs": 2, "tta": 2, "early_stopping_patience": 2,
                   "batch_size": 16},
    "ancillary": {"epochs": 2},
    "experiments": {
        "augmentation": [
            {"ratio": "1:0", "group": "baseline"},
            {"ratio": "1:1/2", "gan": "stylegan2", "sampling": "diverse", "group": "sampling"},
            {"ratio": "1:1/4", "gan": "all", "group": "gan"},
            {"ratio": "1:1/2", "gan": "toypool", "group": "gan"},
        ],
        "anonymization": [
            {"ratio": "1/2:0", "group": "1/2"},
            {"ratio": "1/2:1/2", "gan": "stylegan2", "sampling": "worst", "group": "1/2"},
        ],
    },
}


GANS_USED = ["pgan", "pix2pixhd", "spade", "stylegan2"]
EXTERNAL_USED = ["toypool"]
# the external pool TINY names: 1:1/2 of the 120 training images asks 42 benign and 18 melanoma of it
TOY_POOL = {"path": "external/toypool", "n_per_class": 48, "seed": 5, "size": 32}


def write_config(workdir: Path, cfg: dict) -> None:
    """The config, and the toy external pool (TOY_POOL) when the config uses it and the folder is not there."""
    from ganaug.toyderm import make_external_pool

    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    named = {(g or {}).get("path") for g in cfg.get("gans", {}).values()}
    if TOY_POOL["path"] in named and not (workdir / TOY_POOL["path"]).exists():
        make_external_pool(workdir / TOY_POOL["path"], TOY_POOL["n_per_class"], TOY_POOL["seed"], TOY_POOL["size"])


def snakemake(workdir: Path, *args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(SNAKEMAKE + ["-d", str(workdir), *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def study(tiny_study):
    """The TINY study, built once per test session (tests/conftest.py: tiny_study)."""
    return tiny_study


def test_every_public_output(study):
    r = study / "results"
    for name in ("toy", "toy_clinic"):
        index = pd.read_csv(r / f"data/index/{name}.csv")
        assert {"image", "label", "diagnosis", "dataset"} <= set(index.columns)
    train, val = pd.read_csv(r / "data/splits/train.csv"), pd.read_csv(r / "data/splits/val.csv")
    assert len(train) > len(val) > 0
    for ts in ("indist", "clinical"):
        assert len(pd.read_csv(r / f"data/testsets/{ts}.csv")) > 0
    gan = r / "gans/stylegan2"
    assert sorted(p.name for p in gan.glob("snapshot-*.pt")), "no snapshots"
    assert (gan / "metrics.jsonl").read_text().strip()
    selected = yaml.safe_load((gan / "selected.json").read_text())
    assert (study / selected["path"]).exists() and np.isfinite(selected["fid"])
    fids = pd.read_csv(gan / "fid.csv")  # KID over subsets smaller than the sample: a real spread
    assert (fids["kid_std"] > 0).all()
    assert (gan / "selected_grid.png").stat().st_size > 0
    manifest = pd.read_csv(r / "pools/stylegan2/manifest.csv", dtype={"phash": str})
    assert {"image", "label", "phash", "score"} <= set(manifest.columns)
    assert len(manifest) == 300 and manifest["phash"].str.len().eq(16).all()
    # a translation GAN's pool: one image per training label map, of the class of the map's real image
    for gan in ("pix2pixhd", "spade"):
        pool = pd.read_csv(r / f"pools/{gan}/manifest.csv")
        assert len(pool) == len(train) and set(pool["source_image"]) == set(train["image"])
        assert (pool["label"].to_numpy() == train.set_index("image").loc[pool["source_image"], "label"].to_numpy()).all()
    mixed = pd.read_csv(r / "samples/1x1-4_all.csv")
    assert set(mixed["gan"]) == set(GANS_USED)  # the `all` experiment draws from every GAN
    trainset = pd.read_csv(r / "trainsets/1x1-2_sgn_div/rep0.csv")
    assert {"image", "label", "source", "gan"} <= set(trainset.columns)
    assert set(trainset["source"]) == {"real", "synthetic"}
    auc = pd.read_csv(r / "auc.csv")
    assert {"experiment", "label", "group", "replicate", "test_set", "auc"} <= set(auc.columns)
    assert len(auc.drop_duplicates(["experiment", "replicate", "test_set"])) == 6 * 2 * 2
    assert auc["auc"].between(0, 1).all()
    for app in ("augmentation", "anonymization"):
        for ts in ("indist", "clinical"):
            for ext in ("png", "pdf"):
                assert (r / f"figures/{app}_{ts}.{ext}").stat().st_size > 0
    run = r / "runs/1x0/rep1"
    assert (run / "model.pt").exists() and len(pd.read_csv(run / "history.csv")) >= 1
    preds = pd.read_csv(run / "predictions/indist.csv")
    assert {"image", "label", "prob"} <= set(preds.columns)
    assert (auc["auc_low"] <= auc["auc"]).all() and (auc["auc"] <= auc["auc_high"]).all()


def test_statistics_tables_and_gan_table(study):
    r = study / "results"
    stats = pd.read_csv(r / "stats.csv")
    compared = stats[stats["experiment"] != stats["baseline"]]
    # per test set: 1:1/2 vs 1:0; 1/2:0 vs 1:0 (what halving the real data costs); 1/2:1/2 vs 1/2:0
    pairs = set(zip(compared["experiment"], compared["baseline"]))
    assert pairs == {("1x1-2_sgn_div", "1x0"), ("1x1-4_all", "1x0"), ("1x1-2_toy", "1x0"), ("1-2x0", "1x0"),
                     ("1-2x1-2_sgn_wst", "1-2x0")}
    assert len(compared) == 5 * 2
    assert (compared["n_pairs"] == 2).all() and compared["p_value"].between(0, 1).all()
    assert (compared["p_adjusted"] >= compared["p_value"]).all()
    for app in ("augmentation", "anonymization"):
        for ts in ("indist", "clinical"):
            for ext in ("csv", "md", "tex"):
                assert (r / f"tables/{app}_{ts}.{ext}").stat().st_size > 0
    gans = pd.read_csv(r / "gan_fid.csv")
    assert list(gans["gan"]) == sorted(GANS_USED + EXTERNAL_USED)
    assert gans["fid"].notna().all() and gans["precision"].between(0, 1).all()
    assert {"recall_benign", "recall_melanoma"} <= set(gans.columns)


def test_memorization_audit(study):
    r = study / "results/audit"
    summary = pd.read_csv(r / "summary.csv")
    assert set(summary["gan"]) == set(GANS_USED + EXTERNAL_USED)
    assert set(summary["measure"]) == {"phash_distance", "cosine"}
    for gan in GANS_USED + EXTERNAL_USED:
        nearest = pd.read_csv(r / gan / "nearest.csv")
        used = pd.concat([pd.read_csv(f) for f in (study / "results/samples").glob("*.csv")])
        assert len(nearest) == used.loc[used["gan"] == gan, "image"].nunique()
        assert nearest["hash_dist"].between(0, 64).all() and nearest["cos_sim"].between(-1, 1 + 1e-6).all()
        for grid in ("closest_phash.png", "closest_features.png"):
            assert (r / gan / grid).stat().st_size > 0


def test_external_pool_joins_the_study(study):
    """The toy external pool goes through the protocol as a trained GAN does: imported into pool shards (its
    32 px images resized to the study's 16 with a warning), pHash and scores, FID / KID / precision / recall
    against the real training images (one gan_fid.csv row, no checkpoint choice), the sample of its
    experiment `1:1/2 toy`, its train sets, runs, statistics, tables and figures, and its audit."""
    r = study / "results"
    manifest = pd.read_csv(r / "pools/toypool/manifest.csv", dtype={"phash": str})
    assert len(manifest) == 2 * TOY_POOL["n_per_class"] and set(manifest["snapshot"]) == {"external"}
    assert {"image", "label", "phash", "score", "file"} <= set(manifest.columns)
    assert manifest["file"].str.startswith(TOY_POOL["path"]).all()
    log = (study / "logs/pools/import_pool/toypool.log").read_text()
    assert "96 image(s) of another size than the study's 16x16 px (32x32" in log
    assert not (r / "gans/toypool/training.json").exists() and not list((r / "gans/toypool").glob("snapshot-*"))
    row = pd.read_csv(r / "gan_fid.csv").set_index("gan").loc["toypool"]
    assert row["label"] == "toy" and row["snapshot"] == "external" and np.isfinite(row["fid"])
    assert pd.isna(row["trained_kimg"]) and 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1
    train = pd.read_csv(r / "data/splits/train.csv")
    n = {c: int((train["label"] == c).sum()) for c in (0, 1)}
    synthetic = pd.read_csv(r / "trainsets/1x1-2_toy/rep1.csv").query("source == 'synthetic'")
    assert set(synthetic["gan"]) == {"toypool"}
    assert synthetic["label"].value_counts().to_dict() == {c: round(n[c] / 2) for c in (0, 1)}
    stats = pd.read_csv(r / "stats.csv")
    assert set(stats.loc[stats["experiment"] == "1x1-2_toy", "test_set"]) == {"indist", "clinical"}
    assert "1:1/2 toy" in (r / "tables/augmentation_indist.md").read_text()
    assert "1:1/2 toy" in set(pd.read_csv(r / "auc.csv")["label"])
    design = pd.read_csv(r / "tables/design.csv").set_index("experiment").loc["1x1-2_toy"]
    assert design["synthetic_benign"] == design["asked_synthetic_benign"] == round(n[0] / 2)
    audit = pd.read_csv(r / "audit/toypool/nearest.csv")
    assert len(audit) == len(synthetic) and audit["hash_dist"].between(0, 64).all()


def test_replicates_pair_real_subsets(study):
    r = study / "results/trainsets"
    a = pd.read_csv(r / "1-2x0/rep0.csv")
    b = pd.read_csv(r / "1-2x1-2_sgn_wst/rep0.csv")
    c = pd.read_csv(r / "1-2x0/rep1.csv")
    real_b = b[b["source"] == "real"]
    assert sorted(a["image"]) == sorted(real_b["image"])  # same real subset across experiments
    assert sorted(a["image"]) != sorted(c["image"])  # a different one per replicate
    s0 = pd.read_csv(r / "1-2x1-2_sgn_wst/rep0.csv").query("source == 'synthetic'")
    s1 = pd.read_csv(r / "1-2x1-2_sgn_wst/rep1.csv").query("source == 'synthetic'")
    assert list(s0["image"]) == list(s1["image"])  # synthetic subset fixed across replicates


def test_report_target(study, frozen_workflow):
    run = subprocess.run(frozen_workflow.cmd + ["-d", str(study), "--cores", "1", "report"], env=frozen_workflow.env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    html = (study / "results/report.html").read_text(errors="replace")
    assert "auc.csv" in html and len(html) > 10000


def test_rerun_is_a_no_op(study, frozen_workflow):
    run = subprocess.run(frozen_workflow.cmd + ["-d", str(study), "-n", "--cores", "1"], env=frozen_workflow.env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Nothing to be done" in run.stdout + run.stderr


def test_lint_is_clean():
    run = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and "Congratulations" in run.stdout + run.stderr, run.stdout + run.stderr


def _dag_edges(workdir):
    run = snakemake(workdir, "--dag", "--forceall")
    assert run.returncode == 0, run.stderr[-3000:]
    labels = dict(re.findall(r'^\s*(\d+)\[label = "([^"]*)"', run.stdout, flags=re.M))
    edges = re.findall(r"^\s*(\d+) -> (\d+)", run.stdout, flags=re.M)
    return labels, edges


def test_test_sets_feed_only_evaluation(tmp_path):
    write_config(tmp_path, TINY)
    labels, edges = _dag_edges(tmp_path)
    children = {}
    for a, b in edges:
        children.setdefault(a, []).append(b)
    seeds = [n for n, lab in labels.items()
             if lab.startswith("testset") or (lab.startswith("cache_images") and "testsets/" in lab)]
    assert seeds, "no test-set jobs in the DAG"
    allowed = {"testset", "cache_images", "evaluate", "aggregate", "stats", "plot_figures", "all"}  # after evaluate
    stack, seen = list(seeds), set()
    while stack:
        n = stack.pop()
        for c in children.get(n, []):
            if c not in seen:
                seen.add(c)
                stack.append(c)
    reached = {labels[n].split("\\n")[0] for n in seen}
    assert reached <= allowed, f"test-set data reaches {reached - allowed}"
    assert "evaluate" in reached


BAD_CONFIGS = [
    (["experiments", "augmentation", 1, "gan"], "stylegan3", "experiments.augmentation[1].gan"),
    (["experiments", "augmentation", 1, "sampling"], "prettiest", "experiments.augmentation[1].sampling"),
    (["experiments", "anonymization", 0, "ratio"], "1/2::0", "experiments.anonymization[0].ratio"),
    (["experiments", "anonymization", 0, "ratio"], "3/2:0", "experiments.anonymization[0].ratio"),
    (["classifier", "model"], "timm:no_such_net", "classifier.model"),
    (["datasets", "toy_clinic"], {"kind": "index", "path": "nowhere/index.csv"}, "datasets.toy_clinic.path"),
    (["gans", "stylegan2", "channel_bsae"], 256, "gans.stylegan2.channel_bsae"),
    (["gans", "toypool", "path"], "nowhere", "gans.toypool.path: not found: nowhere"),
    (["replicates_per_job"], 2, "replicates_per_job"),
]


@pytest.mark.parametrize("path,value,key", BAD_CONFIGS, ids=[b[2] for b in BAD_CONFIGS])
def test_bad_config_fails_before_any_job(tmp_path, path, value, key):
    cfg = copy.deepcopy(TINY)
    node = cfg
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    write_config(tmp_path, cfg)
    run = snakemake(tmp_path, "--cores", "1")
    assert run.returncode != 0
    assert key in run.stdout + run.stderr, run.stderr[-2000:]
    assert not (tmp_path / "results").exists()


def test_paper_design_dry_run(tmp_path):
    """The paper's full DAG builds (dry run), with the whole Table 2 x 10 replicates, and nothing of the toy
    config leaks into it."""
    run = subprocess.run(SNAKEMAKE + ["-d", str(tmp_path), "-n", "--configfile", str(REPO / "config/paper.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", run.stdout, flags=re.M))
    assert stats["train_classifier"] == str(27 * 10)
    assert stats["train_gan"] == "4" and stats["evaluate"] == "27"
    assert "toyderm" not in run.stdout


def test_default_study_keeps_two_cores_busy_on_the_critical_path(tmp_path):
    """On 2 cores (dry run of config/config.yaml): no job of a GAN's chain asks for both cores (it would wait
    until nothing else runs), StyleGAN2's chain, which 19 of the 27 experiments wait for, goes before the
    other GANs', and those before classifiers; the label maps are cached as early as the images."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text((REPO / "config" / "config.yaml").read_text())
    run = subprocess.run(SNAKEMAKE + ["-d", str(tmp_path), "-n", "--cores", "2"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = [dict(re.findall(r"^    (\w+): (.*)$", block, flags=re.M)) | {"rule": rule}
            for rule, block in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", run.stdout, flags=re.M)]
    priority = {}
    for job in jobs:
        priority.setdefault(job["rule"], {})[job.get("wildcards", "")] = int(job.get("priority", 0))
        if job["rule"] in ("train_gan", "select_checkpoint", "generate_pool", "hash_pool", "score_pool"):
            assert int(job.get("threads", 1)) == 1, job
    for rule in ("train_gan", "select_checkpoint", "generate_pool", "hash_pool", "score_pool"):
        others = [p for w, p in priority[rule].items() if w != "gan=stylegan2"]
        assert priority[rule]["gan=stylegan2"] > max(others) > max(priority["train_classifier"].values()), rule
    assert set(priority["cache_masks"].values()) == set(priority["cache_images"].values())
    assert min(priority["cache_masks"].values()) > max(priority["train_classifier"].values())


def test_translation_gan_without_label_maps_fails_before_any_job(tmp_path):
    """pix2pixHD on a user's index that has no 'mask' column: the config check names the GAN and the file."""
    pd.DataFrame({"image": ["a.png"], "label": [0], "diagnosis": ["nevus"]}).to_csv(tmp_path / "mine.csv",
                                                                                      index=False)
    cfg = copy.deepcopy(TINY)
    cfg["datasets"]["toy"] = {"kind": "index", "path": "mine.csv"}
    cfg["experiments"]["augmentation"][1]["gan"] = "pix2pixhd"
    write_config(tmp_path, cfg)
    run = snakemake(tmp_path, "--cores", "1")
    assert run.returncode != 0
    assert "gans.pix2pixhd: translates label maps into images" in run.stderr and "mine.csv" in run.stderr
    assert not (tmp_path / "results").exists()


def test_external_pool_too_small_fails_before_any_classifier(tmp_path):
    """An external pool with fewer melanoma images than `1:1/2` asks for: import_pool (first in line after
    the split) fails naming the pool and the count, before the ancillary or any experiment's classifier."""
    from ganaug.toyderm import make_external_pool

    make_external_pool(tmp_path / TOY_POOL["path"], 5, seed=5, size=16)
    write_config(tmp_path, TINY)
    run = snakemake(tmp_path, "--cores", "1")
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "gans.toypool (external/toypool): 5 benign image(s), but an experiment asks for 42 synthetic benign" \
        in out, out[-3000:]
    assert not (tmp_path / "results/ancillary").exists() and not (tmp_path / "results/runs").exists()
