from fractions import Fraction

import pandas as pd
import pytest

from ganaug.design import (
    Ratio,
    application_order,
    build_experiments,
    counts,
    experiment_id,
    experiment_table,
    format_label,
    format_ratio,
    parse_ratio,
    real_subset,
    synthetic_seed,
)
from ganaug.io import InputError

F = Fraction
CLASSES = {0: 11684, 1: 3121}


def test_parse_ratio():
    assert parse_ratio("1:0") == Ratio(F(1), F(0), F(0))
    assert parse_ratio("1:1/2") == Ratio(F(1), F(1, 2), F(1, 2))
    assert parse_ratio(" (1:1/2:3/4) ") == Ratio(F(1), F(1, 2), F(3, 4))
    assert parse_ratio("1/16:15/16") == Ratio(F(1, 16), F(15, 16), F(15, 16))
    assert parse_ratio("0:1") == Ratio(F(0), F(1), F(1))
    assert parse_ratio("1:2") == Ratio(F(1), F(2), F(2))  # synthetic may exceed the real count
    assert parse_ratio("1 : 0.5") == Ratio(F(1), F(1, 2), F(1, 2))


@pytest.mark.parametrize("bad,problem", [
    ("", "expected 'a:b'"), ("  ", "expected 'a:b'"), ("1", "expected 'a:b'"), ("1:1:1", "expected 'a:b'"),
    ("(1:1/2)", "needs three fractions"), ("(1:1/2:3/4", "unbalanced parentheses"),
    ("1:a", "'a' is not a non-negative fraction"), ("1:-1/2", "'-1/2' is not a non-negative fraction"),
    ("a:b", "'a' is not a non-negative fraction"), ("1:1/0", "divides by zero"),
    ("3/2:0", "larger than 1"), ("2:1", "larger than 1"), ("0:0", "nothing to train on"),
    ("(1:1/2:3/4:1)", "needs three fractions"), (0.5, "expected a string"), (None, "expected a string"),
])
def test_parse_ratio_errors_name_the_text(bad, problem):
    """The message starts with the ratio exactly as given, quoted (so an empty one reads ratio ''), and
    says what is wrong with it."""
    with pytest.raises(InputError) as e:
        parse_ratio(bad)
    assert str(e.value).startswith(f"ratio {bad!r}: "), str(e.value)
    assert problem in str(e.value), str(e.value)


def test_counts_design_examples():
    # DESIGN.md, Conventions
    assert counts(parse_ratio("1:1/4"), CLASSES) == {"real": {0: 11684, 1: 3121}, "synthetic": {0: 2921, 1: 780}}
    assert counts("(1:1/2:3/4)", CLASSES)["synthetic"] == {0: 5842, 1: 2341}
    c = counts("1/16:15/16", CLASSES)
    assert c == {"real": {0: 730, 1: 195}, "synthetic": {0: 10954, 1: 2926}}
    assert counts("1:0", CLASSES)["synthetic"] == {0: 0, 1: 0}


def test_counts_round_half_to_even():
    assert counts("1/2:1/2", {0: 5, 1: 7}) == {"real": {0: 2, 1: 4}, "synthetic": {0: 2, 1: 4}}
    assert counts("1/4:3/4", {0: 2, 1: 6}) == {"real": {0: 0, 1: 2}, "synthetic": {0: 2, 1: 4}}
    with pytest.raises(InputError):
        counts("1:1", {0: 5})


def test_labels_and_ids():
    assert format_label("1:0", None, None) == "1:0"
    assert format_label("1:1/2", "stylegan2", "random") == "1:1/2 sgn"
    assert format_label("1:1/2", "stylegan2", "best") == "1:1/2 sgn bst"
    assert format_label("(1:1/2:3/4)", "stylegan2", None) == "(1:1/2:3/4) sgn"
    assert format_label("(1:1/2:1/2)", "pgan", "diverse") == "1:1/2 pgn div"
    assert format_label("1/4:3/4", "all", "worst") == "1/4:3/4 all wst"
    assert experiment_id("1:0") == "1x0"
    assert experiment_id("1:1/2", "stylegan2", "random") == "1x1-2_sgn"
    assert experiment_id("1:1/2", "stylegan2", "best") == "1x1-2_sgn_bst"
    assert experiment_id("(1:1/2:3/4)", "stylegan2") == "1x1-2x3-4_sgn"
    assert experiment_id("1/16:15/16", "stylegan2") == "1-16x15-16_sgn"
    assert format_ratio(parse_ratio("0.25:0.75")) == "1/4:3/4"


def _cfg():
    return {
        "augmentation": [
            {"ratio": "1:0", "group": "baseline"},
            {"ratio": "1:1/2", "gan": "stylegan2", "sampling": "random", "group": "gan"},
            {"ratio": "1:1/2", "gan": "stylegan2", "sampling": "best", "group": "sampling"},
            {"ratio": "(1:1/2:3/4)", "gan": "stylegan2", "group": "balance"},
        ],
        "anonymization": [
            {"ratio": "1/4:0", "group": "1/4"},
            {"ratio": "1/4:3/4", "gan": "stylegan2", "group": "1/4"},
            {"ratio": "1/2:1/2", "gan": "stylegan2", "group": "1/2"},
            {"ratio": "1:1/2", "gan": "stylegan2", "group": "full"},
        ],
    }


def test_build_experiments():
    exps = build_experiments(_cfg())
    by = {e.id: e for e in exps}
    assert [e.id for e in exps] == ["1x0", "1x1-2_sgn", "1x1-2_sgn_bst", "1x1-2x3-4_sgn", "1-4x0",
                                    "1-4x3-4_sgn", "1-2x1-2_sgn"]
    assert by["1x0"].gan is None and by["1x0"].sampling is None and by["1x0"].label == "1:0"
    assert by["1x1-2x3-4_sgn"].sampling == "random"  # default
    shared = by["1x1-2_sgn"]
    assert shared.applications == ("augmentation", "anonymization")
    assert shared.groups == {"augmentation": "gan", "anonymization": "full"} and shared.group == "gan"
    assert by["1x1-2_sgn_bst"].label == "1:1/2 sgn bst" and by["1x1-2_sgn_bst"].baseline_id == "1x0"
    # anonymization baseline: same real fraction without synthetic images if declared, else 1:0
    assert by["1-4x3-4_sgn"].baseline_id == "1-4x0"
    assert by["1-2x1-2_sgn"].baseline_id == "1x0"
    assert by["1-4x0"].baseline_id == "1x0"
    assert application_order(exps, "anonymization") == ["1-4x0", "1-4x3-4_sgn", "1-2x1-2_sgn", "1x1-2_sgn"]
    table = experiment_table(exps)
    assert len(table) == 8 and set(table.application) == {"augmentation", "anonymization"}
    assert by["1x1-2_sgn"].to_dict()["applications"] == ["augmentation", "anonymization"]


@pytest.mark.parametrize("mutate,key", [
    (lambda c: c["augmentation"][1].update(gan="biggan"), "experiments.augmentation[1].gan"),
    (lambda c: c["augmentation"][2].update(sampling="clever"), "experiments.augmentation[2].sampling"),
    (lambda c: c["augmentation"][3].update(ratio="(1:1/2)"), "experiments.augmentation[3].ratio"),
    (lambda c: c["anonymization"][1].update(ratio="5/4:0"), "experiments.anonymization[1].ratio"),
    (lambda c: c["augmentation"][3].pop("gan"), "experiments.augmentation[3].gan"),
    (lambda c: c["augmentation"][0].update(gan="stylegan2"), "experiments.augmentation[0].gan"),
    (lambda c: c["augmentation"][0].update(sampler="best"), "experiments.augmentation[0].sampler"),
    (lambda c: c["augmentation"].append({"ratio": "1:1/2", "gan": "stylegan2"}), "experiments.augmentation[4]"),
    (lambda c: c["anonymization"].append({"ratio": "(1/2:1/2:1/2)", "gan": "stylegan2"}),
     "experiments.anonymization[4]"),
    (lambda c: c["augmentation"].pop(0), "1:0"),
    (lambda c: c.update(memorisation=[]), "experiments.memorisation"),
    (lambda c: c["anonymization"][0].pop("ratio"), "experiments.anonymization[0].ratio"),
])
def test_build_experiments_errors_name_the_key(mutate, key):
    cfg = _cfg()
    mutate(cfg)
    with pytest.raises(InputError) as e:
        build_experiments(cfg)
    assert key in str(e.value)


def test_duplicate_error_mentions_first():
    cfg = _cfg()
    cfg["augmentation"].append({"ratio": "1:1/2", "gan": "stylegan2", "sampling": "random"})
    with pytest.raises(InputError, match=r"experiments\.augmentation\[1\]"):
        build_experiments(cfg)


def _train(n0=103, n1=37):
    return pd.DataFrame({"image": [f"img{i}.png" for i in range(n0 + n1)],
                         "label": [0] * n0 + [1] * n1})


def test_real_subset_nested_paired():
    train = _train()
    full = real_subset(train, F(1), replicate=0, seed=1)
    pd.testing.assert_frame_equal(full, train)  # the whole set, in its own order
    quarter = real_subset(train, F(1, 4), replicate=0, seed=1)
    half = real_subset(train, F(1, 2), replicate=0, seed=1)
    assert ((quarter.label == 0).sum(), (quarter.label == 1).sum()) == (round(F(103, 4)), round(F(37, 4)))
    assert set(quarter.index) < set(half.index) < set(full.index)  # nested
    assert list(half.index) == sorted(half.index)
    pd.testing.assert_frame_equal(half, real_subset(train, "1/2", replicate=0, seed=1))  # paired
    other = real_subset(train, F(1, 2), replicate=1, seed=1)
    assert set(other.index) != set(half.index)  # replicates differ
    # counts agree with design.counts
    c = counts("1/16:15/16", {0: 103, 1: 37})["real"]
    sub = real_subset(train, F(1, 16), 3, 1)
    assert {k: int((sub.label == k).sum()) for k in (0, 1)} == c
    assert len(real_subset(train, 0, 0, 1)) == 0
    with pytest.raises(InputError):
        real_subset(train, F(3, 2), 0, 1)


def test_synthetic_seed():
    exps = {e.id: e for e in build_experiments(_cfg())}
    s = synthetic_seed(exps["1x1-2_sgn"], 7)
    assert s == synthetic_seed(exps["1x1-2_sgn"], 7)
    assert s == synthetic_seed(exps["1-2x1-2_sgn"], 7)  # same gan + sampling: nested subsets
    assert s != synthetic_seed(exps["1x1-2_sgn_bst"], 7)
    assert s != synthetic_seed(exps["1x1-2_sgn"], 8)
    assert synthetic_seed({"gan": "stylegan2", "sampling": "random"}, 7) == s
    assert isinstance(s, int) and 0 <= s < 2**32


def test_experiment_dict_round_trip():
    from ganaug.design import Experiment

    for e in build_experiments(_cfg()):
        d = e.to_dict()
        import json

        back = Experiment.from_dict(json.loads(json.dumps(d)))  # plain data survives JSON
        assert back.to_dict() == d
        assert back.ratio == e.ratio and back.applications == e.applications
        assert application_order([back], back.application) == [e.id]
    with pytest.raises(InputError):
        Experiment.from_dict({"id": "x"})


def test_data_dict_holds_what_decides_the_data_only():
    """The params of the sampling and train-set rules: an experiment shown in another figure, group or
    position has the same data_dict (so it re-runs nothing), and it rebuilds an Experiment that samples
    the same way (ratio, gan, sampling, seed)."""
    from ganaug.design import Experiment

    a = {e.id: e for e in build_experiments(_cfg())}
    moved = _cfg()
    for app in moved:
        moved[app] = [dict(e, group="elsewhere") if isinstance(e, dict) else e for e in reversed(moved[app])]
    moved["anonymization"] = moved["anonymization"] + [{"ratio": "1:0", "group": "1"}]
    b = {e.id: e for e in build_experiments(moved)}
    for eid, e in a.items():
        assert e.data_dict() == b[eid].data_dict()
        assert e.to_dict() != b[eid].to_dict()  # the figure layout did change
        back = Experiment.from_dict(e.data_dict())
        assert (back.id, back.ratio, back.gan, back.sampling, back.label) == (e.id, e.ratio, e.gan, e.sampling,
                                                                             e.label)
        assert synthetic_seed(back, 7) == synthetic_seed(e, 7)


def test_build_trainset_uses_the_authors_real_subset(tmp_path):
    """split.reduced_lists: replicate r's real quarter is the published list r, not a seeded draw."""
    from ganaug.trainsets import build_trainset

    train = _train().assign(image=lambda d: [f"img{i}.png" for i in range(len(d))])
    train.to_csv(tmp_path / "train.csv", index=False)
    listed = train.iloc[::4]
    listed.to_csv(tmp_path / "rep0.csv", index=False)
    exp = build_experiments({"anonymization": [{"ratio": "1/4:0", "group": "1/4"},
                                               {"ratio": "1:0", "group": "full"}]})[0]
    out = build_trainset(exp, 0, tmp_path / "train.csv", None, tmp_path / "ts.csv", seed=1,
                         real_csv=tmp_path / "rep0.csv")
    assert sorted(out["image"]) == sorted(listed["image"]) and set(out["source"]) == {"real"}
    seeded = build_trainset(exp, 0, tmp_path / "train.csv", None, tmp_path / "ts2.csv", seed=1)
    assert sorted(seeded["image"]) != sorted(listed["image"])
    pd.DataFrame({"image": ["elsewhere.png"], "label": [0]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match=r"bad.csv: 1 image\(s\) not in the training part"):
        build_trainset(exp, 0, tmp_path / "train.csv", None, tmp_path / "ts3.csv", seed=1,
                       real_csv=tmp_path / "bad.csv")
