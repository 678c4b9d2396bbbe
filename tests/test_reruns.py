"""Partial re-runs: after one factor of a finished study changes, Snakemake schedules exactly the jobs that
depend on it, and no others. Each case dry-runs (`snakemake -n`, rerun triggers from profiles/default) a
variant of the finished TINY study and compares the scheduled jobs, counted per rule, with the DAG's
answer written out below.

The TINY study: datasets toy (split into train / val / test) and toy_clinic; test sets indist and clinical;
four GANs and an external pool (toypool); experiments 1x0 and 1-2x0 (baselines, no GAN), 1x1-2_sgn_div and
1-2x1-2_sgn_wst (StyleGAN2), 1x1-4_all (all four GANs), 1x1-2_toy (the external pool); 2 replicates."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_workflow import TINY

REPO = Path(__file__).resolve().parents[1]
PROFILE = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())


@pytest.fixture
def study(frozen_workflow, tiny_study):
    return frozen_workflow, tiny_study


def scheduled(study, cfg: dict, tmp_path: Path, src: Path | None = None) -> tuple[dict, str]:
    """{rule: job count} of a dry run of `cfg` on the finished study (with the library in `src` instead of
    the frozen one, when given)."""
    workflow, workdir = study
    cfg_file = tmp_path / "variant.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = workflow.cmd + ["-d", str(workdir), "-n", "--cores", "2", "--configfile", str(cfg_file)]
    env = workflow.with_src(src) if src is not None else workflow.env
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-5000:]
    if "Nothing to be done" in out:
        return {}, out
    table = out.split("Job stats:", 1)[1]
    counts = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}
    counts.pop("total", None)
    return counts, out


def jobs(out: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run lists."""
    found, rule = [], None
    for line in out.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line.strip())
        if m:
            if rule is not None:
                found.append((rule, ""))
            rule = m.group(1)
            continue
        m = re.match(r"^wildcards: (.*)$", line.strip())
        if m and rule is not None:
            found.append((rule, m.group(1)))
            rule = None
    if rule is not None:
        found.append((rule, ""))
    return found


def reasons(out: str) -> str:
    """The jobs and why Snakemake schedules them, for failure messages."""
    return "\n".join(line for line in out.splitlines() if re.match(r"^\s*(rule|localrule|reason:|wildcards:)",
                                                                    line.strip()))


def test_profile_triggers_re_runs_on_params_and_code():
    """What the cases rely on: the profile makes changed params (config, code fingerprints), input sets and
    software envs trigger re-runs, and resumes incomplete jobs."""
    assert {"mtime", "params", "input", "code", "software-env"} <= set(PROFILE["rerun-triggers"])
    assert PROFILE["rerun-incomplete"] is True


def test_finished_study_is_up_to_date(study, tmp_path):
    counts, out = scheduled(study, TINY, tmp_path)
    assert counts == {}, reasons(out)


def test_changed_gan_config_re_runs_that_gan_and_what_uses_its_pool(study, tmp_path):
    """gans.pgan.lr changes: PGAN is trained again, then its checkpoint choice, its pool (generate, hash,
    score), the sample of the one experiment that uses PGAN (1x1-4_all) and that experiment's train sets,
    classifiers and evaluation; the GAN table; the audit of every GAN (each audit reads the samples of the
    experiments using its GAN, and 1x1-4_all uses all four), then the tables and figures. The other GANs,
    their pools and the experiments without PGAN are untouched."""
    cfg = copy.deepcopy(TINY)
    cfg["gans"]["pgan"]["lr"] = 0.0005
    counts, out = scheduled(study, cfg, tmp_path)
    expected = {
        "train_gan": 1, "select_checkpoint": 1, "generate_pool": 1, "hash_pool": 1, "score_pool": 1,
        "sample_synthetic": 1, "build_trainset": 2, "train_classifier": 2, "evaluate": 1,
        "gan_table": 1, "audit": 4, "audit_table": 1, "design_table": 1, "aggregate": 1, "stats": 1,
        "plot_figures": 1, "all": 1,
    }
    assert counts == expected, reasons(out)
    listed = jobs(out)
    per_gan = {w for r, w in listed if r in ("train_gan", "select_checkpoint", "generate_pool", "hash_pool",
                                             "score_pool")}
    assert per_gan == {"gan=pgan"}, listed
    experiments = {w.split(",")[0] for r, w in listed if w.startswith("experiment=")}
    assert experiments == {"experiment=1x1-4_all"}, listed


def test_added_sampling_method_runs_only_the_new_experiment(study, tmp_path):
    """A new experiment (1:1/2 StyleGAN2, best sampling): its sample, its 2 train sets, 2 classifiers and
    its evaluation; the StyleGAN2 audit (its samples now include the new experiment's); the AUC table,
    statistics and figures. No GAN, pool or other experiment runs again."""
    cfg = copy.deepcopy(TINY)
    cfg["experiments"]["augmentation"].append({"ratio": "1:1/2", "gan": "stylegan2", "sampling": "best",
                                               "group": "sampling"})
    counts, out = scheduled(study, cfg, tmp_path)
    expected = {
        "sample_synthetic": 1, "build_trainset": 2, "train_classifier": 2, "evaluate": 1,
        "audit": 1, "audit_table": 1, "design_table": 1, "aggregate": 1, "stats": 1, "plot_figures": 1, "all": 1,
    }
    assert counts == expected, reasons(out)
    listed = jobs(out)
    experiments = {w.split(",")[0] for r, w in listed if w.startswith("experiment=")}
    assert experiments == {"experiment=1x1-2_sgn_bst"}, listed
    assert ("audit", "gan=stylegan2") in listed


def test_changed_figure_layout_re_runs_no_sampling_or_training(study, tmp_path):
    """Experiments shown in another figure, in another order, in another group (here: 1:1/2 sgn div and
    the baseline also in the anonymization figure, as the paper's 1:1 and 1:0, and the augmentation order
    reversed): their data and runs do not change, so only the AUC table, statistics, figures and the design
    table are made again -- no sample, train set, classifier or evaluation."""
    cfg = copy.deepcopy(TINY)
    aug = cfg["experiments"]["augmentation"]
    cfg["experiments"]["augmentation"] = [dict(e, group=f"{e['group']} (moved)") for e in reversed(aug)]
    cfg["experiments"]["anonymization"] += [dict(aug[1], group="1"), {"ratio": "1:0", "group": "1"}]
    counts, out = scheduled(study, cfg, tmp_path)
    expected = {"design_table": 1, "aggregate": 1, "stats": 1, "plot_figures": 1, "all": 1}
    assert counts == expected, reasons(out)


def test_added_test_set_evaluates_every_experiment_on_it(study, tmp_path):
    """A new test set from a new dataset: the dataset, the split check (it checks every test set against
    the training data), the new test set and its image cache -- not the other test sets, which the check
    gates but does not change; the evaluation of every experiment (6, one job each covers its replicates
    and test sets); the AUC table, statistics and figures. No training of any kind."""
    cfg = copy.deepcopy(TINY)
    cfg["datasets"]["toy_extra"] = {"kind": "toyderm", "n": 40, "image_size": 32, "melanoma_fraction": 0.3,
                                    "domain": "clinical", "diagnoses": {"nevus": 1.0}}
    cfg["testsets"]["extra"] = {"dataset": "toy_extra"}
    counts, out = scheduled(study, cfg, tmp_path)
    expected = {
        "make_toyderm": 1, "check_splits": 1, "testset": 1, "cache_images": 1, "evaluate": 6,
        "aggregate": 1, "stats": 1, "plot_figures": 1, "all": 1,
    }
    assert counts == expected, reasons(out)
    listed = jobs(out)
    assert ("make_toyderm", "dataset=toy_extra") in listed and ("testset", "test_set=extra") in listed, listed


@pytest.fixture
def edited_src(tmp_path, frozen_workflow):
    """A copy of the (frozen) library to edit; Snakemake run with it on PYTHONPATH imports, and
    fingerprints, the copy."""
    src = tmp_path / "src"
    shutil.copytree(frozen_workflow.src / "ganaug", src / "ganaug")

    def edit(relpath: str, line: str) -> Path:
        path = src / "ganaug" / relpath
        path.write_text(path.read_text() + f"\n{line}\n")
        return src

    return edit


def test_edited_classifier_code_re_runs_what_uses_classifiers(study, tmp_path, edited_src):
    """classifier/training.py changes: every classifier is trained again (the ancillary one and the 12 of
    the experiments) and every evaluation runs again; the ancillary classifier feeds each GAN's checkpoint
    choice (FID features) and pool scores, so every GAN's pool is generated, hashed and scored again, the
    external pool's FID and scores are computed again (its import and pHash stay), the GAN experiments'
    samples and train sets are rebuilt, and the audits (classifier features) rerun. What no classifier
    touches stays: data, caches, GAN training, the imported pool, the baselines' train sets."""
    src = edited_src("classifier/training.py", "EDITED = True  # a code change")
    counts, out = scheduled(study, TINY, tmp_path, src=src)
    expected = {
        "train_ancillary": 1, "select_checkpoint": 4, "external_fid": 1, "generate_pool": 4, "hash_pool": 4,
        "score_pool": 5, "sample_synthetic": 4, "build_trainset": 8, "train_classifier": 12, "evaluate": 6,
        "gan_table": 1, "audit": 5, "audit_table": 1, "design_table": 1, "aggregate": 1, "stats": 1,
        "plot_figures": 1, "all": 1,
    }
    assert counts == expected, reasons(out)


def test_edited_code_that_changes_no_result_re_runs_nothing(study, tmp_path, edited_src):
    """Logging, threads and GPU choice (ganaug.progress, ganaug.gpu_slots) change no result: an edit there
    must not re-run the study (on the paper's config that would be days of GAN training)."""
    edited_src("gpu_slots.py", "EDITED = True")
    src = edited_src("progress.py", "EDITED = True")
    counts, out = scheduled(study, TINY, tmp_path, src=src)
    assert counts == {}, reasons(out)


def test_edited_comments_and_docstrings_re_run_nothing(study, tmp_path, edited_src):
    """The code fingerprint is the syntax tree without docstrings: a comment, a docstring or a line break
    changes no result and re-runs nothing (the same file with a real change does: the test below)."""
    src = edited_src("gans/pgan.py", "# a comment")
    path = src / "ganaug" / "gans" / "pgan.py"
    text = path.read_text()
    doc = text.index('"""') + 3
    text = text[:doc] + "An edited docstring. " + text[doc:]
    path.write_text(text.replace("import torch\n", "import torch  # a comment on a code line\n", 1))
    assert path.read_text() != (study[0].src / "ganaug" / "gans" / "pgan.py").read_text()
    counts, out = scheduled(study, TINY, tmp_path, src=src)
    assert counts == {}, reasons(out)


@pytest.mark.parametrize("module", ["gans/pgan.py", "gans/settings/pgan.py"])
def test_edited_gan_code_re_runs_that_gan_only(study, tmp_path, edited_src, module):
    """gans/pgan.py or its settings (gans/settings/pgan.py) change: as a change of PGAN's config (the same
    jobs)."""
    src = edited_src(module, "EDITED = True")
    counts, out = scheduled(study, TINY, tmp_path, src=src)
    assert counts == {
        "train_gan": 1, "select_checkpoint": 1, "generate_pool": 1, "hash_pool": 1, "score_pool": 1,
        "sample_synthetic": 1, "build_trainset": 2, "train_classifier": 2, "evaluate": 1,
        "gan_table": 1, "audit": 4, "audit_table": 1, "design_table": 1, "aggregate": 1, "stats": 1,
        "plot_figures": 1, "all": 1,
    }, reasons(out)
