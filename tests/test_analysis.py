"""Tests of ganaug.analysis: the tidy AUC table and the Figure-2-style plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ganaug.analysis import AUC_COLUMNS, aggregate, draw_figure, group_colours, plot_all, plot_figure
from ganaug.io import InputError

EXPERIMENTS = [
    {"id": "1x0", "label": "1:0", "group": "baseline", "applications": ("augmentation", "anonymization")},
    {"id": "1x1-2_sgn", "label": "1:1/2 sgn", "group": "gan", "applications": ("augmentation",)},
    {"id": "1x1-2_sgn_bst", "label": "1:1/2 sgn bst", "group": "sampling", "applications": ("augmentation",)},
    {"id": "1-4x3-4_sgn", "label": "1/4:3/4 sgn", "group": "1/4", "applications": ("anonymization",)},
]


def _write_predictions(path, rng, n=40, with_ties=True):
    labels = np.r_[np.zeros(n // 2, int), np.ones(n - n // 2, int)]
    rng.shuffle(labels)
    prob = np.clip(0.3 * labels + rng.random(n) * 0.8, 0, 1)
    if with_ties:
        prob = np.round(prob, 1)  # ties across classes
    pd.DataFrame({"image": [f"img_{i}.png" for i in range(n)], "label": labels, "prob": prob}).to_csv(
        path, index=False
    )
    return roc_auc_score(labels, prob)


@pytest.fixture
def fake_runs(tmp_path):
    rng = np.random.default_rng(0)
    preds, expected = [], {}
    for exp in EXPERIMENTS:
        for rep in range(3):
            for ts in ("isic19_test", "derm7pt"):
                p = tmp_path / exp["id"] / f"rep{rep}" / f"{ts}.csv"
                p.parent.mkdir(parents=True, exist_ok=True)
                expected[(exp["id"], rep, ts)] = _write_predictions(p, rng)
                preds.append((exp["id"], rep, ts, p))
    rng.shuffle(preds)  # input order must not matter
    return preds, expected


def test_aggregate_values_rows_and_order(fake_runs):
    preds, expected = fake_runs
    auc = aggregate(preds, EXPERIMENTS)
    assert list(auc.columns) == AUC_COLUMNS
    # one row per prediction file and application; the baseline belongs to both applications
    assert len(auc) == (len(EXPERIMENTS) + 1) * 3 * 2
    assert set(auc["application"]) == {"augmentation", "anonymization"}
    base = auc[auc["experiment"] == "1x0"]
    assert sorted(base["application"].unique()) == ["anonymization", "augmentation"]
    for row in auc.itertuples():
        assert row.auc == pytest.approx(expected[(row.experiment, row.replicate, row.test_set)], abs=1e-12)
    lab = dict(zip(auc["experiment"], auc["label"]))
    assert lab["1x1-2_sgn_bst"] == "1:1/2 sgn bst" and lab["1-4x3-4_sgn"] == "1/4:3/4 sgn"
    assert dict(zip(auc["experiment"], auc["group"]))["1x1-2_sgn"] == "gan"
    # experiments in config order within an application, replicates sorted
    aug = auc[auc["application"] == "augmentation"]
    assert list(dict.fromkeys(aug["experiment"])) == ["1x0", "1x1-2_sgn", "1x1-2_sgn_bst"]
    one = aug[(aug["experiment"] == "1x0") & (aug["test_set"] == "derm7pt")]
    assert list(one["replicate"]) == [0, 1, 2]
    assert auc["replicate"].dtype == np.int64


def test_aggregate_accepts_objects_and_single_application(tmp_path):
    from dataclasses import dataclass

    @dataclass
    class Exp:
        id: str
        label: str
        group: str
        application: str

    p = tmp_path / "p.csv"
    want = _write_predictions(p, np.random.default_rng(3), with_ties=False)
    auc = aggregate([("1x0", 0, "t", p)], [Exp("1x0", "1:0", "baseline", "augmentation")])
    assert len(auc) == 1 and auc.loc[0, "application"] == "augmentation"
    assert auc.loc[0, "auc"] == pytest.approx(want)


def test_aggregate_group_per_application(tmp_path):
    p = tmp_path / "p.csv"
    _write_predictions(p, np.random.default_rng(4))
    exp = {"id": "1x0", "label": "1:0", "group": "baseline",
           "applications": ("augmentation", "anonymization"),
           "groups": {"augmentation": "baseline", "anonymization": "1"}}
    auc = aggregate([("1x0", 0, "t", p)], [exp])
    assert dict(zip(auc["application"], auc["group"])) == {"augmentation": "baseline", "anonymization": "1"}


def test_aggregate_errors_name_the_file(tmp_path):
    good = tmp_path / "good.csv"
    _write_predictions(good, np.random.default_rng(1))
    exps = EXPERIMENTS[:1]
    with pytest.raises(InputError, match="not among the declared"):
        aggregate([("nope", 0, "t", good)], exps)
    with pytest.raises(InputError, match="duplicate"):
        aggregate([("1x0", 0, "t", good), ("1x0", 0, "t", good)], exps)

    bad_cols = tmp_path / "bad_cols.csv"
    pd.DataFrame({"image": ["a"], "score": [0.1]}).to_csv(bad_cols, index=False)
    with pytest.raises(InputError, match=r"bad_cols\.csv.*missing column"):
        aggregate([("1x0", 0, "t", bad_cols)], exps)

    bad_label = tmp_path / "bad_label.csv"
    pd.DataFrame({"image": ["a", "b"], "label": [0, 2], "prob": [0.1, 0.2]}).to_csv(bad_label, index=False)
    with pytest.raises(InputError, match=r"bad_label\.csv.*'label'"):
        aggregate([("1x0", 0, "t", bad_label)], exps)

    nan_prob = tmp_path / "nan_prob.csv"
    pd.DataFrame({"image": ["a", "b"], "label": [0, 1], "prob": [0.1, None]}).to_csv(nan_prob, index=False)
    with pytest.raises(InputError, match=r"nan_prob\.csv.*'prob'"):
        aggregate([("1x0", 0, "t", nan_prob)], exps)

    one_class = tmp_path / "one_class.csv"
    pd.DataFrame({"image": ["a", "b"], "label": [1, 1], "prob": [0.1, 0.7]}).to_csv(one_class, index=False)
    with pytest.raises(InputError, match=r"one_class\.csv"):
        aggregate([("1x0", 0, "t", one_class)], exps)

    with pytest.raises(InputError, match="not found"):
        aggregate([("1x0", 0, "t", tmp_path / "missing.csv")], exps)


def test_group_colours_alternate_between_consecutive_groups():
    assert group_colours(["b", "g", "g", "g", "s", "s", "c"]) == [0, 1, 1, 1, 0, 0, 1]
    assert group_colours(["a", "a"]) == [0, 0]
    assert group_colours([]) == []


def _fake_auc(groups_by_exp, application="augmentation", test_sets=("isic19_test",), reps=5):
    rng = np.random.default_rng(7)
    rows = []
    for ts in test_sets:
        for exp, group in groups_by_exp:
            for r in range(reps):
                rows.append(
                    {"experiment": exp, "label": exp.replace("x", ":"), "group": group,
                     "application": application, "replicate": r, "test_set": ts,
                     "auc": 0.8 + 0.05 * rng.random()}
                )
    return pd.DataFrame(rows, columns=AUC_COLUMNS)


def test_figure_box_colours_order_and_labels():
    exps = [("1x0", "baseline"), ("1x1-2", "gan"), ("1x1", "gan"), ("1x2", "amount"), ("1x3", "amount"),
            ("1x4", "sampling")]
    auc = _fake_auc(exps)
    order = [e for e, _ in exps]
    fig = draw_figure(auc, "augmentation", "isic19_test", order, baseline="1x0")
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if p.get_gid() == "group-box"]
    assert len(boxes) == len(order)
    # boxes are drawn in `order`; same colour within a group, the colour flips between consecutive groups
    colours = [tuple(np.round(b.get_facecolor(), 4)) for b in boxes]
    assert colours[1] == colours[2] and colours[3] == colours[4]
    assert colours[0] != colours[1] and colours[2] != colours[3] and colours[4] != colours[5]
    assert colours[0] == colours[3] and colours[1] == colours[5]
    # first experiment at the top: tick labels read top to bottom in config order
    ticks = sorted(zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()]), reverse=True)
    assert [t for _, t in ticks] == [e.replace("x", ":") for e in order]
    assert ax.get_xlabel() == "AUC" and ax.get_title() == "augmentation - isic19_test"
    # one red mean dot per experiment, at the mean of its replicates
    means = [c for c in ax.collections if c.get_offsets().shape[0] == 1]
    assert len(means) == len(order)
    want = auc.groupby("experiment")["auc"].mean()
    for coll, exp in zip(means, order):
        assert coll.get_offsets()[0, 0] == pytest.approx(want[exp])
    # every replicate drawn as a point
    points = [c for c in ax.collections if c.get_offsets().shape[0] == 5]
    assert len(points) == len(order)
    # height grows with the number of experiments
    small = draw_figure(_fake_auc(exps[:2]), "augmentation", "isic19_test")
    assert fig.get_figheight() > small.get_figheight()


def test_plot_figure_writes_files_and_reports_colours(tmp_path):
    exps = [("1x0", "baseline"), ("1x1-2", "gan"), ("1x1", "gan")]
    auc = _fake_auc(exps)
    out = plot_figure(auc, "augmentation", "isic19_test", ["1x0", "1x1-2", "1x1"],
                      tmp_path / "f" / "a.png", tmp_path / "f" / "a.pdf")
    assert out["colours"] == {"1x0": 0, "1x1-2": 1, "1x1": 1}
    png, pdf = out["png"].read_bytes(), out["pdf"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert pdf[:5] == b"%PDF-" and len(pdf) > 1000
    assert not [p for p in (tmp_path / "f").iterdir() if p.name.endswith(".tmp")]  # atomic, no leftovers
    with pytest.raises(InputError, match="no AUC values"):
        plot_figure(auc, "augmentation", "isic19_test", ["1x0", "ghost"], tmp_path / "x.png")
    with pytest.raises(InputError, match="no rows"):
        plot_figure(auc, "anonymization", "isic19_test", ["1x0"], tmp_path / "x.png")


def test_plot_all_every_application_and_test_set(tmp_path):
    aug = _fake_auc([("1x0", "baseline"), ("1x1-2", "gan")], "augmentation", ("isic19_test", "derm7pt"))
    ano = _fake_auc([("1x0", "1"), ("1-4x3-4", "1/4")], "anonymization", ("isic19_test",))
    auc = pd.concat([aug, ano], ignore_index=True)
    paths = plot_all(auc, {"augmentation": ["1x0", "1x1-2"], "anonymization": ["1-4x3-4", "1x0"]},
                     tmp_path / "figures")
    names = sorted(p.name for p in paths)
    assert names == sorted(
        f"{a}_{t}.{ext}"
        for a, t in (("augmentation", "isic19_test"), ("augmentation", "derm7pt"),
                     ("anonymization", "isic19_test"))
        for ext in ("png", "pdf")
    )
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_aggregate_auc_confidence_intervals(fake_runs):
    preds, _ = fake_runs
    auc = aggregate(preds, EXPERIMENTS)
    assert (auc["auc_low"] < auc["auc"]).all() and (auc["auc"] < auc["auc_high"]).all()
    assert ((auc["auc_se"] > 0.02) & (auc["auc_se"] < 0.2)).all()  # 40 test images: a wide interval


def test_figure_marks_significant_differences():
    exps = [("1x0", "baseline"), ("1x1-2", "gan"), ("1x1", "gan"), ("1x2", "amount")]
    auc = _fake_auc(exps)
    fig = draw_figure(auc, "augmentation", "isic19_test", [e for e, _ in exps], baseline="1x0",
                      significance={"1x1-2": "better", "1x1": "", "1x2": "worse"})
    marks = {t.get_gid(): t.get_text() for t in fig.axes[0].texts}
    assert marks == {"significant-better": "\u25b2", "significant-worse": "\u25bc"}
    plain = draw_figure(auc, "augmentation", "isic19_test", [e for e, _ in exps])
    assert not plain.axes[0].texts


def test_write_stats_tables(tmp_path, fake_runs):
    from ganaug.stats import STATS_COLUMNS, write_stats

    preds, _ = fake_runs
    experiments = {e["id"]: dict(e, baselines={a: "1x0" for a in e["applications"]},
                                 positions={a: i for a in e["applications"]}, groups={})
                   for i, e in enumerate(EXPERIMENTS)}
    aggregate(preds, EXPERIMENTS).to_csv(tmp_path / "auc.csv", index=False)
    stats = write_stats(tmp_path / "auc.csv", experiments, tmp_path / "stats.csv", tmp_path / "tables",
                        n_boot=200, seed=1)
    assert list(pd.read_csv(tmp_path / "stats.csv").columns) == STATS_COLUMNS
    assert len(stats) == len(aggregate(preds, EXPERIMENTS)) // 3  # one row per experiment and figure
    for ext in ("csv", "md", "tex"):
        assert (tmp_path / "tables" / f"augmentation_derm7pt.{ext}").stat().st_size > 0
    md = (tmp_path / "tables" / "augmentation_isic19_test.md").read_text()
    assert "1:1/2 sgn bst" in md and "(baseline)" in md
    # with the design table, the tables say how many synthetic images each train set holds
    ids = [e["id"] for e in EXPERIMENTS]
    pd.DataFrame({"experiment": ids, "synthetic_benign": range(len(ids)), "synthetic_melanoma": 7,
                  "asked_synthetic_benign": 1, "asked_synthetic_melanoma": 7}).to_csv(tmp_path / "d.csv", index=False)
    write_stats(tmp_path / "auc.csv", experiments, tmp_path / "stats.csv", tmp_path / "tables", n_boot=200,
                seed=1, design_csv=tmp_path / "d.csv")
    table = pd.read_csv(tmp_path / "tables" / "augmentation_isic19_test.csv")
    got = dict(zip(table["Experiment"], table["Synthetic (benign + melanoma)"]))
    labels = [e["label"] for e in EXPERIMENTS]
    assert got[labels[1]] == "1 + 7" and got[labels[2]] == "2 + 7 of 1 + 7"  # not what was asked: says so
    with pytest.raises(InputError, match="AUC table not found"):
        write_stats(tmp_path / "none.csv", experiments, tmp_path / "s.csv", tmp_path / "t")
