"""External pools (gans.<name>: kind external): the generator registry, the folder and CSV readers, the import
into pool shards with each bad input failing with its message, and the pool's FID against the real images."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ganaug.design import build_experiments
from ganaug.external import (check_supply, import_pool, listing_fingerprint, read_pool_listing, resolve_external,
                             study_resolution, synthetic_demand)
from ganaug.gans import (GAN_NAMES, abbreviation, check_generator_names, conditioning, configured_generators,
                         expand_gan, generator_kind)
from ganaug.io import InputError

GANS = {"stylegan2": {"resolution": 16}, "mygen": {"kind": "external", "path": "pool", "abbreviation": "ext"}}


def _png(path, size=16, value=None, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8) if value is None else \
        np.full((size, size, 3), value, np.uint8)
    Image.fromarray(img).save(path)
    return path


def _folder_pool(root, n=(4, 3), size=16):
    for label, name in enumerate(("benign", "melanoma")):
        for k in range(n[label]):
            _png(root / name / f"{name}_{k}.png", size, seed=10 * label + k)
    return root


def _train_csv(tmp_path, n=(10, 6)):
    rows = [(f"data/img_{i:03d}.png", 0 if i < n[0] else 1) for i in range(sum(n))]
    path = tmp_path / "train.csv"
    pd.DataFrame(rows, columns=["image", "label"]).to_csv(path, index=False)
    return path


def _entry(path, **kw):
    return resolve_external("mygen", {**GANS, "mygen": {**GANS["mygen"], "path": str(path), **kw}})


# ---- registry -------------------------------------------------------------------------------------------


def test_registry_kinds_abbreviations_and_conditioning():
    assert generator_kind("stylegan2", GANS) == "stylegan2" and generator_kind("mygen", GANS) == "external"
    assert abbreviation("mygen", GANS) == "ext" and abbreviation("spade") == "spd" and abbreviation("all") == "all"
    assert abbreviation("diffusion") == "dif"
    assert conditioning("mygen", GANS) == "class" and conditioning("pix2pixhd", GANS) == "mask"
    assert configured_generators(GANS)[-1] == "mygen" and "diffusion" in configured_generators(GANS)
    assert expand_gan("all") == list(GAN_NAMES) and "mygen" not in expand_gan("all")  # `all`: the four GANs
    with pytest.raises(InputError, match=r"experiments.x.gan: unknown generator 'other'.*mygen"):
        generator_kind("other", GANS, key="experiments.x.gan")
    with pytest.raises(InputError, match="gans.pgan.kind: 'pgan' is a built-in generator"):
        generator_kind("pgan", {"pgan": {"kind": "external"}})
    with pytest.raises(InputError, match="gans.pgan.kind: 'gan' is not a kind"):
        generator_kind("pgan", {"pgan": {"kind": "gan"}})


@pytest.mark.parametrize("entry,message", [
    ({"kind": "external", "path": "p"}, "gans.mine.abbreviation: required"),
    ({"kind": "external", "path": "p", "abbreviation": "sgn"}, "gans.mine.abbreviation: 'sgn' is the label of a "
                                                               "built-in"),
    ({"kind": "external", "path": "p", "abbreviation": "dif"}, "gans.mine.abbreviation: 'dif'"),
    ({"kind": "external", "path": "p", "abbreviation": "My Gen"}, "gans.mine.abbreviation: 'My Gen' must be"),
])
def test_bad_abbreviation_names_the_key(entry, message):
    problems = check_generator_names({"mine": entry})
    assert len(problems) == 1 and problems[0].startswith(message), problems


def test_two_pools_with_one_abbreviation_and_bad_names():
    gans = {"a": {"kind": "external", "path": "p", "abbreviation": "x1"},
            "b": {"kind": "external", "path": "q", "abbreviation": "x1"},
            "Bad-Name": {"kind": "external", "path": "q", "abbreviation": "x2"}}
    problems = check_generator_names(gans)
    assert any(p.startswith("gans.b.abbreviation: 'x1' is already the label of gans.a") for p in problems)
    assert any(p.startswith("gans.Bad-Name: a generator's name") for p in problems)


def test_resolve_external_keys_and_resolution():
    e = resolve_external("mygen", GANS)
    assert (e["resize"], e["resolution"]) == ("warn", 16)  # the study's GANs' resolution
    assert study_resolution({}) == 256
    assert resolve_external("mygen", {**GANS, "mygen": {**GANS["mygen"], "resolution": 64}})["resolution"] == 64
    for extra, message in [({"resize": "crop"}, "gans.mygen.resize: 'crop'"),
                           ({"resolution": 4}, "gans.mygen.resolution: 4"),
                           ({"n_per_class": 3}, "gans.mygen.n_per_class: unknown key"),
                           ({"path": None}, "gans.mygen.path: required")]:
        with pytest.raises(InputError, match=message):
            resolve_external("mygen", {**GANS, "mygen": {**GANS["mygen"], **extra}})
    with pytest.raises(InputError, match="gans.mygen.resolution: the built-in GANs have different"):
        resolve_external("mygen", {"pgan": {"resolution": 32}, "spade": {}, "mygen": GANS["mygen"]})


def test_experiments_name_external_pools_by_their_abbreviation():
    exps = build_experiments({"augmentation": [{"ratio": "1:0"}, {"ratio": "1:1/2", "gan": "mygen"},
                                               {"ratio": "1:1", "gan": "mygen", "sampling": "best"}]}, GANS)
    assert [(e.id, e.label) for e in exps[1:]] == [("1x1-2_ext", "1:1/2 ext"), ("1x1_ext_bst", "1:1 ext bst")]
    with pytest.raises(InputError, match=r"experiments.augmentation\[1\].gan: unknown generator 'mygen'"):
        build_experiments({"augmentation": [{"ratio": "1:0"}, {"ratio": "1:1/2", "gan": "mygen"}]})


# ---- readers --------------------------------------------------------------------------------------------


def test_folder_reader(tmp_path):
    _folder_pool(tmp_path / "pool")
    (tmp_path / "pool" / "benign" / "notes.txt").write_text("not an image")
    table = read_pool_listing("pool", tmp_path)
    assert list(table.columns) == ["image", "label"]
    assert table["label"].tolist() == [0] * 4 + [1] * 3
    assert table["image"].iloc[0].endswith("pool/benign/benign_0.png")
    _png(tmp_path / "digits" / "1" / "a.jpg")  # class folders may be named 0 / 1
    assert read_pool_listing(tmp_path / "digits")["label"].tolist() == [1]


def test_csv_reader_paths_relative_to_the_csv(tmp_path):
    _png(tmp_path / "gen" / "imgs" / "a.png")
    _png(tmp_path / "gen" / "imgs" / "b.png")
    pd.DataFrame({"image": ["imgs/a.png", "imgs/b.png"], "label": ["melanoma", "0"],
                  "source_image": ["ISIC_1", "ISIC_2"], "other": [1, 2]}).to_csv(tmp_path / "gen" / "index.csv",
                                                                                 index=False)
    table = read_pool_listing("gen/index.csv", tmp_path)
    assert table["label"].tolist() == [1, 0] and table["source_image"].tolist() == ["ISIC_1", "ISIC_2"]
    assert table["image"].tolist() == [str(tmp_path / "gen" / "imgs" / "a.png"), str(tmp_path / "gen/imgs/b.png")]


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="gans.mygen.path: not found: nowhere"):
        read_pool_listing("nowhere", tmp_path, key="gans.mygen.path")


def test_empty_class_folder(tmp_path):
    _folder_pool(tmp_path / "pool")
    (tmp_path / "pool" / "melanoma_extra").mkdir()
    with pytest.raises(InputError, match="melanoma_extra.*not one of the study's classes"):
        read_pool_listing(tmp_path / "pool")
    (tmp_path / "pool" / "melanoma_extra").rmdir()
    for f in (tmp_path / "pool" / "melanoma").iterdir():
        f.unlink()
    with pytest.raises(InputError, match=r"pool/melanoma: empty class folder"):
        read_pool_listing(tmp_path / "pool")


def test_folder_structure_errors(tmp_path):
    _folder_pool(tmp_path / "pool")
    _png(tmp_path / "pool" / "0" / "x.png")
    with pytest.raises(InputError, match="a second folder for class benign"):
        read_pool_listing(tmp_path / "pool")
    _png(tmp_path / "flat" / "x.png")
    with pytest.raises(InputError, match="x.png lies outside a class folder"):
        read_pool_listing(tmp_path / "flat")


def test_label_outside_the_classes_in_a_csv(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    pd.DataFrame({"image": ["a.png", "b.png"], "label": [0, 2]}).to_csv(tmp_path / "index.csv", index=False)
    with pytest.raises(InputError, match=r"index.csv, row 3 \(b.png\): label '2' is not one of the study's classes"):
        read_pool_listing(tmp_path / "index.csv")


def test_csv_errors_name_the_file(tmp_path):
    _png(tmp_path / "a.png")
    pd.DataFrame({"image": ["a.png"]}).to_csv(tmp_path / "nolabel.csv", index=False)
    with pytest.raises(InputError, match=r"nolabel.csv: missing column\(s\) \['label'\]"):
        read_pool_listing(tmp_path / "nolabel.csv")
    pd.DataFrame({"image": ["a.png", "gone.png"], "label": [0, 1]}).to_csv(tmp_path / "gone.csv", index=False)
    with pytest.raises(InputError, match=r"gone.png: image file not found"):
        read_pool_listing(tmp_path / "gone.csv")


# ---- import ---------------------------------------------------------------------------------------------


def test_import_writes_a_pool_of_shards(tmp_path):
    from ganaug.pool import load_pool_images

    _folder_pool(tmp_path / "pool", n=(4, 3))
    shards = import_pool("mygen", _entry(tmp_path / "pool"), _train_csv(tmp_path), {0: 2, 1: 3},
                         tmp_path / "out", tmp_path / "out/shards.csv", shard_size=3)
    assert len(shards) == 7 and shards["label"].tolist() == [0] * 4 + [1] * 3
    assert set(shards["snapshot"]) == {"external"} and set(shards["gan"]) == {"mygen"}
    assert shards["shard"].tolist() == [0, 0, 0, 1, 1, 1, 2]
    images = load_pool_images(pd.read_csv(tmp_path / "out/shards.csv"))
    assert images.shape == (7, 16, 16, 3)
    np.testing.assert_array_equal(images[4], np.asarray(Image.open(shards["file"].iloc[4]).convert("RGB")))


def test_too_few_images_of_a_class(tmp_path):
    _folder_pool(tmp_path / "pool", n=(4, 3))
    with pytest.raises(InputError, match=r"gans.mygen \(.*pool\): 3 melanoma image\(s\), but an experiment asks for "
                                         r"5 synthetic melanoma images of gans.mygen"):
        import_pool("mygen", _entry(tmp_path / "pool"), _train_csv(tmp_path), {0: 4, 1: 5}, tmp_path / "out",
                    tmp_path / "out/shards.csv")
    assert not (tmp_path / "out/shards.csv").exists()


def test_demand_is_the_largest_ratio_of_this_generator():
    exps = build_experiments({"augmentation": [{"ratio": "1:0"}, {"ratio": "1:1/2", "gan": "mygen"},
                                               {"ratio": "(1:1/4:1)", "gan": "mygen"},
                                               {"ratio": "1:2", "gan": "stylegan2"}]}, GANS)
    assert synthetic_demand(exps, "mygen", {0: 100, 1: 30}) == {0: 50, 1: 30}
    assert synthetic_demand(exps, "pgan", {0: 100, 1: 30}) == {0: 0, 1: 0}


def test_unreadable_image(tmp_path):
    _folder_pool(tmp_path / "pool")
    (tmp_path / "pool" / "melanoma" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(InputError, match=r"melanoma/broken.png: cannot read image"):
        import_pool("mygen", _entry(tmp_path / "pool"), _train_csv(tmp_path), {0: 1, 1: 1}, tmp_path / "out",
                    tmp_path / "out/shards.csv")


def test_other_size_fails_or_is_resized_with_a_warning(tmp_path, caplog):
    _folder_pool(tmp_path / "pool")
    _png(tmp_path / "pool" / "benign" / "big.png", size=24, value=200)
    with pytest.raises(InputError, match=r"benign/big.png: 24x24 px, the study's images are 16x16 "
                                         r"\(gans.mygen.resize: error"):
        import_pool("mygen", _entry(tmp_path / "pool", resize="error"), _train_csv(tmp_path), {0: 1, 1: 1},
                    tmp_path / "out", tmp_path / "out/shards.csv")
    with caplog.at_level(logging.WARNING, logger="ganaug"):
        shards = import_pool("mygen", _entry(tmp_path / "pool"), _train_csv(tmp_path), {0: 1, 1: 1},
                             tmp_path / "out", tmp_path / "out/shards.csv")
    assert "1 image(s) of another size than the study's 16x16 px (24x24" in caplog.text
    from ganaug.pool import load_pool_images

    images = load_pool_images(shards)
    big = int(np.flatnonzero(shards["file"].str.endswith("big.png"))[0])
    assert images.shape[1:] == (16, 16, 3) and (images[big] == 200).all()


def test_source_images_must_be_training_images(tmp_path, caplog):
    train = _train_csv(tmp_path)
    for name in ("a", "b", "c"):
        _png(tmp_path / "gen" / f"{name}.png", seed=ord(name))
    index = tmp_path / "gen" / "index.csv"
    pd.DataFrame({"image": ["a.png", "b.png", "c.png"], "label": [0, 1, 1],
                  "source_image": ["img_000", "data/img_012.png", "img_012"]}).to_csv(index, index=False)
    with caplog.at_level(logging.WARNING, logger="ganaug"):
        shards = import_pool("mygen", _entry(index), train, {0: 1, 1: 2}, tmp_path / "out",
                             tmp_path / "out/shards.csv")
    # matched by path or by image id; two images of one map: one per map (the study's rule) warns
    assert shards["source_image"].tolist() == ["data/img_000.png", "data/img_012.png", "data/img_012.png"]
    assert "1 melanoma label maps for 2 asked" in caplog.text
    pd.DataFrame({"image": ["a.png"], "label": [0], "source_image": ["ISIC_999"]}).to_csv(index, index=False)
    with pytest.raises(InputError, match="source_image 'ISIC_999' is not an image of the training split"):
        import_pool("mygen", _entry(index), train, {0: 1, 1: 0}, tmp_path / "out", tmp_path / "out/shards.csv")


def test_check_supply_counts_images_not_maps_in_ratio_mode():
    table = pd.DataFrame({"image": list("abc"), "label": [1, 1, 1], "source_image": ["m", "m", "m"]})
    check_supply(table, {0: 0, 1: 3}, "mygen", "pool", one_per_mask=False)  # 3 images: enough
    with pytest.raises(InputError, match="3 melanoma image"):
        check_supply(table, {0: 0, 1: 4}, "mygen", "pool", one_per_mask=False)


def test_listing_fingerprint_follows_the_files(tmp_path):
    _folder_pool(tmp_path / "pool")
    before = listing_fingerprint("pool", tmp_path)
    assert before == listing_fingerprint(tmp_path / "pool") and len(before) == 16
    _png(tmp_path / "pool" / "melanoma" / "new.png")
    assert listing_fingerprint("pool", tmp_path) != before
    assert listing_fingerprint("nowhere", tmp_path) == ""


def test_config_check_reports_external_pool_problems(tmp_path):
    from ganaug.config_check import _check_generators

    cfg = {"gans": dict(GANS), "experiments": {"augmentation": [{"ratio": "1:0"},
                                                                {"ratio": "1:1/2", "gan": "mygen"}]}}
    assert _check_generators(cfg, tmp_path, deep=True) == ["gans.mygen.path: not found: pool (a folder per class, "
                                                           "or an index CSV)"]
    assert _check_generators(cfg, tmp_path, deep=False) == []  # a cluster job does not list the files again
    _folder_pool(tmp_path / "pool")
    assert _check_generators(cfg, tmp_path, deep=True) == []


# ---- quality of the pool ----------------------------------------------------------------------------------


def test_evaluate_pool_fid_against_the_real_images(tmp_path, monkeypatch):
    """A pool of the real images' look scores a lower FID than a grey-washed one; one row, snapshot 'external'."""
    import json

    import torch

    import ganaug.classifier.training as ct
    from ganaug.selection import evaluate_pool, gan_table

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 6, 3)

        def features(self, x):
            y = torch.relu(self.conv(x))
            return torch.cat([y.mean(dim=(2, 3)), y.std(dim=(2, 3))], 1)

    class Info:
        mean, std, input_size, name = (0.5,) * 3, (0.5,) * 3, 16, "timm:tiny"

    monkeypatch.setattr(ct, "load_classifier", lambda path, device: (Tiny(), Info()))
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (60, 16, 16, 3), dtype=np.uint8)
    labels = np.r_[np.zeros(40, int), np.ones(20, int)]
    like = rng.integers(0, 256, (50, 16, 16, 3), dtype=np.uint8)
    grey = np.round(0.8 * 128 + 0.2 * like).astype(np.uint8)
    pool_labels = np.r_[np.zeros(30, int), np.ones(20, int)]
    cfg = {"n_images": 48, "noise_seeds": 3, "grid_per_class": 3, "inception_weights": None}
    out = {}
    for name, pool in (("like", like), ("grey", grey)):
        out[name] = evaluate_pool(pool, pool_labels, real, labels, None, cfg, seed=1, device="cpu",
                                  out_selected=tmp_path / f"{name}.json", out_fid=tmp_path / f"{name}.csv",
                                  out_grid=tmp_path / f"{name}.png")
    assert out["like"]["fid"] < out["grey"]["fid"]
    sel = out["like"]
    assert sel["snapshot"] == "external" and sel["kimg"] is None and len(sel["fid_seed_values"]) == 3
    assert sel["fid_seed_std"] > 0  # three different pool subsets
    assert json.loads((tmp_path / "like.json").read_text()) == sel
    assert [q["class"] for q in sel["quality"]] == ["all", "0", "1"]
    fid = pd.read_csv(tmp_path / "like.csv")
    assert len(fid) == 1 and fid["snapshot"].iloc[0] == "external" and fid["fid"].iloc[0] == sel["fid"]
    assert Image.open(tmp_path / "like.png").size == (3 * 16, 2 * 16)
    row = gan_table([("mygen", sel, None)], labels={"mygen": "ext"}).iloc[0]
    assert row["label"] == "ext" and row["snapshot"] == "external" and np.isnan(row["trained_kimg"])
    assert row["fid"] == sel["fid"] and 0 <= row["precision"] <= 1


def test_toy_external_pool_script(tmp_path):
    """dev/toy_external_pool.py writes a folder-per-class pool of fresh toyderm images that the reader takes;
    the same seed gives the same images, another seed others."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "dev" / "toy_external_pool.py"
    for out, seed in (("a", 1), ("b", 1), ("c", 2)):
        run = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / out), "--n-per-class", "3",
                              "--seed", str(seed), "--size", "16"], capture_output=True, text=True, timeout=120,
                             env=os.environ)
        assert run.returncode == 0, run.stderr
    table = read_pool_listing(tmp_path / "a")
    assert table["label"].tolist() == [0, 0, 0, 1, 1, 1]
    pixels = {out: np.stack([np.asarray(Image.open(p)) for p in read_pool_listing(tmp_path / out)["image"]])
              for out in "abc"}
    assert pixels["a"].shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(pixels["a"], pixels["b"])
    assert not np.array_equal(pixels["a"], pixels["c"])
