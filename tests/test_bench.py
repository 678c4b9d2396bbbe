"""python -m ganaug.bench: the harness on a CPU at tiny sizes (keys, positive numbers, tables), the cost
arithmetic on a config small enough to compute by hand, and old-against-new in a subprocess. Speed itself is
not tested."""

import json
import subprocess
from pathlib import Path

import pytest

from ganaug.bench import __main__ as bench
from ganaug.bench.cost import StudyFacts, study_cost, study_facts, trainset_sizes

REPO = Path(__file__).resolve().parents[1]
PAPER = str(REPO / "config" / "paper.yaml")


def test_quick_run_on_cpu_writes_json_and_prints_tables(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench.main(["--quick", "--device", "cpu", "--config", PAPER, "--gans", "pgan",
                "--only", "gans", "classifier", "cost", "--out", str(out), "--results", str(tmp_path)])
    saved = json.loads(out.read_text())
    assert set(saved) >= {"meta", "environment", "measurements", "cost", "notes"}
    pgan = saved["measurements"]["new"]["gans"]["pgan"]
    assert pgan["fp32"]["status"] == "ok", pgan["fp32"]
    for k in ("train_img_s", "s_per_kimg", "gen_img_s", "peak_memory_gb"):
        assert pgan["fp32"][k] > 0, k
    assert pgan["fp32"]["resolution"] == 32 and pgan["fp32"]["dropped_keys"] == []
    assert pgan["bf16"]["status"] == "n/a"  # bf16 on CUDA only
    cls = saved["measurements"]["new"]["classifier"]["fp32"]
    assert cls["status"] == "ok", cls
    assert min(cls["train_img_s"], cls["tta_passes_s"], cls["eval_img_s"]) > 0
    cost = saved["cost"]["new"]
    stages = {s["stage"]: s for s in cost["stages"]}
    assert stages["pgan training"]["gpu_hours"] > 0 and stages["classifier trainings"]["gpu_hours"] > 0
    assert stages["stylegan2 training"]["gpu_hours"] is None and not cost["complete"]  # not measured
    assert stages["classifier trainings"]["jobs"] == 270
    printed = capsys.readouterr().out
    assert "| pgan | 32 | 4 | fp32 |" in printed and "Predicted cost of the study" in printed
    assert "not GPU figures" in printed and "NOT a prediction" in printed


def test_cost_arithmetic_on_a_hand_computed_config():
    config = {
        "replicates": 2,
        "experiments": {"augmentation": [{"ratio": "1:0"}, {"ratio": "1:1", "gan": "stylegan2"}]},
        "gans": {"stylegan2": {"total_kimg": 3.6, "snapshot_kimg": 1.2}},  # 3 snapshots
        "fid": {"n_images": 100, "noise_seeds": 2, "second_metric": False},
        "pool": {"n_per_class": 500},
        "classifier": {"epochs": 5, "early_stopping_patience": 2, "tta": 3},
    }
    facts = StudyFacts(train={0: 60, 1: 40}, val=50, masked=0, tests={"a": 10, "b": 20})
    rates = {"gans": {"stylegan2": {"train_img_s": 1.0, "gen_img_s": 100.0}},
             "classifier": {"train_img_s": 10.0, "eval_img_s": 50.0, "tta_passes_s": 30.0},
             "fid_features_img_s": 100.0}
    assert trainset_sizes(config, facts) == {"1x0": 100, "1x1_sgn": 200}
    c = study_cost(config, rates, facts, gpus=2, best_epoch=1)
    sec = {s["stage"]: s["gpu_hours"] * 3600 for s in c["stages"]}
    assert sec["stylegan2 training"] == pytest.approx(3600)  # 3,600 images at 1 img/s
    # reals' features once, then (3 snapshots + 1 noise seed + 1 quality) x 100 x (generate + features)
    assert sec["stylegan2 checkpoint selection"] == pytest.approx(100 / 100 + 5 * 100 * (1 / 100 + 1 / 100))
    assert sec["stylegan2 pool"] == pytest.approx(1000 / 100)
    assert sec["stylegan2 pool scores"] == pytest.approx(1000 / 50)
    # min(5, best 1 + patience 2) = 3 epochs, each 100 training + 50 validation images
    assert c["assumptions"]["expected_epochs"] == 3
    assert sec["ancillary classifier"] == pytest.approx(3 * (100 / 10 + 50 / 50))
    # 2 experiments x 2 replicates: (100 + 200) x 2 training images and 4 x 50 validation images per epoch
    assert sec["classifier trainings"] == pytest.approx(3 * (600 / 10 + 4 * 50 / 50))
    assert sec["evaluation (TTA)"] == pytest.approx(4 * 30 * 3 / 30)
    total = 3600 + 11 + 10 + 20 + 33 + 192 + 12
    assert c["total_gpu_hours"] * 3600 == pytest.approx(total)
    # all 5 epochs: classifier trainings 5 x 64 s, ancillary 5 x 11 s
    assert c["total_gpu_hours_all_epochs"] * 3600 == pytest.approx(total - 192 - 33 + 320 + 55)
    # critical path: GAN chain 3,641 s + the longest training 3 x (200/10 + 1) + one evaluation job 12/2
    assert c["critical_path_hours"] * 3600 == pytest.approx(3641 + 63 + 6)
    assert c["wall_hours"] == c["critical_path_hours"]  # 2 GPUs: total / 2 is shorter than the path
    assert study_cost(config, rates, facts, gpus=1, best_epoch=1)["wall_hours"] * 3600 == pytest.approx(total)


def test_paper_facts_and_translation_gans_capped_at_their_maps(tmp_path):
    import yaml

    config = yaml.safe_load(Path(PAPER).read_text())
    facts = study_facts(config, tmp_path)  # no prepared data: the study's published counts
    assert facts.train == {0: 11684, 1: 3121} and facts.val == 1931 and facts.masked == 2594
    assert sum(facts.tests.values()) == 3863 + 1743 + 872 + 839 + 973
    sizes = trainset_sizes(config, facts)
    assert len(sizes) == 27 and sizes["1x0"] == 14805
    assert sizes["1x1-2_sgn"] == 14805 + 5842 + 1560
    assert sizes["1x1-2_p2p"] == 14805 + 2594  # every label map once (one_per_mask), not the 7,402 asked
    with pytest.raises(Exception, match="class counts are unknown"):
        study_facts({"split": {}, "testsets": {}}, tmp_path)


def test_cost_uses_bf16_unless_the_config_asks_for_fp32():
    measured = {"classifier": {"fp32": {"status": "ok", "train_img_s": 1.0},
                               "bf16": {"status": "ok", "train_img_s": 2.0}},
                "gans": {"pgan": {"fp32": {"status": "ok", "train_img_s": 3.0}, "bf16": {"status": "n/a"}}}}
    r = bench.rates_for_cost(measured, {"classifier": {}})
    assert r["classifier"]["train_img_s"] == 2.0 and r["classifier"]["precision"] == "bf16"
    assert r["gans"]["pgan"]["precision"] == "fp32"  # bf16 not measured
    r = bench.rates_for_cost(measured, {"classifier": {"precision": "fp32"}})
    assert r["classifier"]["train_img_s"] == 1.0


def test_compare_ref_measures_the_other_code_in_a_subprocess(tmp_path, capsys):
    """The reference is this same src here (a real old checkout works alike): the reference run must come
    from a separate process importing ganaug from the given folder."""
    src = REPO / "src"
    res = bench.main(["--quick", "--device", "cpu", "--config", PAPER, "--only", "classifier",
                      "--compare-ref", str(src), "--out", str(tmp_path / "b.json")])
    ref = res["measurements"]["ref"]["classifier"]["fp32"]
    assert ref["status"] == "ok" and ref["train_img_s"] > 0
    assert res["environment"]["ref"]["ganaug"] == str(src / "ganaug")
    assert "speed-up train" in capsys.readouterr().out
    with pytest.raises(Exception, match="no ganaug package"):
        bench.main(["--quick", "--only", "classifier", "--compare-ref", str(tmp_path), "--out", ""])


def test_export_commit_gives_an_old_src(tmp_path):
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout: --compare-commit needs one")
    src = bench.export_commit("HEAD", tmp_path)
    assert (src / "ganaug" / "__init__.py").is_file()
    with pytest.raises(Exception, match="compare-commit"):
        bench.export_commit("no-such-revision", tmp_path / "x")


def test_overlays_merge_as_snakemake_merges_them_and_the_diffusion_model_is_measured():
    """--config paper.yaml beyond.yaml: mappings merged key by key, lists replaced; the generators measured
    are the trained ones the merged design uses (diffusion included, the external pool not)."""
    import yaml

    from ganaug.bench.__main__ import gans_to_measure, merge_config

    merged = merge_config({"a": {"x": 1, "y": [1, 2]}, "b": 2}, {"a": {"y": [3]}, "c": 4})
    assert merged == {"a": {"x": 1, "y": [3]}, "b": 2, "c": 4}
    root = Path(__file__).resolve().parents[1] / "config"
    paper = yaml.safe_load((root / "paper.yaml").read_text())
    both = merge_config(paper, yaml.safe_load((root / "beyond.yaml").read_text()))
    assert gans_to_measure(paper, None) == ["stylegan2", "pgan", "pix2pixhd", "spade"]
    assert gans_to_measure(both, None) == ["stylegan2", "pgan", "pix2pixhd", "spade", "diffusion"]
    assert both["gans"]["stylegan2"] == paper["gans"]["stylegan2"]
