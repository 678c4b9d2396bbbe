import math

import numpy as np
import pytest

from ganaug.io import InputError
from ganaug.selection import select_snapshot


def test_lowest_fid_when_nothing_close():
    assert select_snapshot([(0, 90.0), (100, 30.0), (200, 31.0), (300, 40.0)]) == (100, 30.0)


def test_later_snapshot_within_tolerance_preferred():
    fids = [(0, 90.0), (100, 30.0), (200, 30.25), (300, 30.31), (400, 33.0)]
    assert select_snapshot(fids) == (200, 30.25)
    assert select_snapshot(fids, tolerance=0.32) == (300, 30.31)
    assert select_snapshot(fids, tolerance=0.31) == (200, 30.25)  # 0.31 apart: not within 0.31 (strict)
    assert select_snapshot(fids, tolerance=0.0) == (100, 30.0)
    assert select_snapshot(list(reversed(fids))) == (200, 30.25)  # order of the input does not matter


def test_boundary_is_strict():
    """The study: later checkpoints for similar FID "(< 0.3 difference)": exactly 0.3 apart is not similar."""
    assert select_snapshot([(10, 10.0), (20, 10.3)]) == (10, 10.0)
    assert select_snapshot([(10, 0.4), (20, 0.7)]) == (10, 0.4)  # 0.7 - 0.4 = 0.29999999999999993 in floats
    assert select_snapshot([(10, 10.0), (20, 10.2999)]) == (20, 10.2999)
    assert select_snapshot([(10, 10.0), (20, 10.0)]) == (20, 10.0)  # equal FIDs: the later, also at tolerance 0
    assert select_snapshot([(10, 10.0), (20, 10.0)], tolerance=0.0) == (20, 10.0)


def test_earlier_snapshot_close_to_minimum_not_chosen():
    # the minimum is the latest; an earlier snapshot within tolerance must not win
    assert select_snapshot([(10, 20.1), (20, 20.0)]) == (20, 20.0)


def test_non_finite_and_errors():
    assert select_snapshot([(10, math.nan), (20, 5.0), (30, math.inf)]) == (20, 5.0)
    with pytest.raises(InputError):
        select_snapshot([])
    with pytest.raises(InputError):
        select_snapshot([(10, math.nan)])
    with pytest.raises(InputError):
        select_snapshot([(10, 1.0), (10, 2.0)])
    with pytest.raises(InputError):
        select_snapshot([(10, 1.0)], tolerance=-1)


def test_no_chaining_ties_and_order():
    """Every candidate is measured against the lowest FID, not against its neighbour; among equal lowest FIDs
    and their candidates the latest wins; the order of the pairs does not matter."""
    assert select_snapshot([(1, 10.0), (2, 10.2), (3, 10.4)]) == (2, 10.2)  # 10.4: 0.4 above the lowest
    assert select_snapshot([(1, 10.0), (2, 12.0), (3, 10.1)]) == (3, 10.1)  # a worse one between: no matter
    assert select_snapshot([(3, 10.1), (1, 10.0), (2, 10.0)]) == (3, 10.1)
    assert select_snapshot([(1, 10.0), (3, 10.0), (2, 10.0)]) == (3, 10.0)
    assert select_snapshot([(1, 10.0), (2, 10.0), (3, 10.3)]) == (2, 10.0)  # the later tie; 10.3 is not < 0.3
    assert select_snapshot([(5, 1.0), (7, 1.2999), (6, 1.1)], tolerance=0.3) == (7, 1.2999)


def test_select_checkpoint_end_to_end(tmp_path, monkeypatch):
    """The FID loop over snapshots with stub generators and a linear stub feature model, so that each
    snapshot's FID is known beforehand: generated images are the compared real images with c added to four
    pixels, the features are those pixels / 4, so the FID is 4 * (c / 4)^2 = c^2 / 4 (equal covariances,
    shifted means)."""
    import json

    import numpy as np
    import pandas as pd
    import torch
    from PIL import Image

    import ganaug.classifier.training as ct
    from ganaug.gans import training as gt
    from ganaug.selection import select_checkpoint

    rng = np.random.default_rng(0)
    real = rng.integers(0, 250, (64, 16, 16, 3), dtype=np.uint8)
    labels = np.r_[np.zeros(40, int), np.ones(24, int)]
    for name in ("snapshot-000001.pt", "snapshot-000002.pt", "snapshot-000004.pt", "snapshot-000008.pt",
                 "unrelated.txt"):
        (tmp_path / name).write_bytes(b"")
    shift = {1.0: 3, 2.0: 0, 4.0: 1, 8.0: 2}  # ancillary FIDs 2.25, 0, 0.25, 1.0 (Inception stub below: c^2)

    class StubG:
        num_classes, z_dim = 2, 8

        def __init__(self, kimg):
            self.shift = shift[kimg]

    def fake_generate(G, labels_, seed, device, **kw):
        assert len(labels_) == len(real)  # n_images = all the reals, in their order
        fake = real.copy()
        fake[:, 0, :4, 0] += np.uint8(G.shift)
        return fake

    monkeypatch.setattr(gt, "load_generator", lambda path, device, ema=True: StubG(gt.snapshot_kimg(path)))
    monkeypatch.setattr(gt, "generate", fake_generate)
    monkeypatch.setattr(gt, "sample_grid", lambda G, n, seed, device, **kw: np.zeros((32, 16 * n, 3), np.uint8))

    class Linear(torch.nn.Module):
        def features(self, x):  # x = pixel / 4 with the mean and std of Info
            return x[:, 0, 0, :4]

    class Info:
        mean, std, input_size, name = (0.0,) * 3, (4 / 255,) * 3, 16, "timm:linear"

    monkeypatch.setattr(ct, "load_classifier", lambda path, device: (Linear(), Info()))
    out = select_checkpoint(tmp_path, real, labels, tmp_path / "model.pt",
                            {"n_images": 64, "tolerance": 0.3, "noise_seeds": 3, "grid_per_class": 2,
                             "inception_weights": None, "kid_subsets": 20, "kid_subset_size": 32},
                            seed=1, device="cpu", out_selected=tmp_path / "selected.json",
                            out_fid=tmp_path / "fid.csv", out_grid=tmp_path / "grid.png")
    table = pd.read_csv(tmp_path / "fid.csv")
    assert table.snapshot.tolist() == ["snapshot-000001.pt", "snapshot-000002.pt", "snapshot-000004.pt",
                                       "snapshot-000008.pt"]
    assert (table.metric == "fid_ancillary").all() and (table.extractor == "ancillary:timm:linear").all()
    np.testing.assert_allclose(table.fid, [2.25, 0.0, 0.25, 1.0], atol=1e-4)
    # lowest FID at kimg 2; kimg 4 is 0.25 above it (< 0.3: preferred, later); kimg 8 is 1.0 above it
    assert (out["snapshot"], out["kimg"], out["best_snapshot"], out["best_kimg"]) == (
        "snapshot-000004.pt", 4.0, "snapshot-000002.pt", 2.0)
    assert out["fid"] == pytest.approx(0.25, abs=1e-4) and out["best_fid"] == pytest.approx(0.0, abs=1e-4)
    assert json.loads((tmp_path / "selected.json").read_text()) == out
    assert len(out["fid_seed_values"]) == 3 and out["fid_seed_std"] >= 0 and out["n_images"] == 64
    assert Image.open(tmp_path / "grid.png").size == (32, 32)
    # KID on fid.kid_subsets subsets of 32 of the 64 images: a real spread over subsets
    assert (table.kid_std > 0).all()
    with pytest.raises(InputError, match="no snapshot"):
        select_checkpoint(tmp_path / "empty", real, labels, None, {}, 1, "cpu", tmp_path / "a", tmp_path / "b",
                          tmp_path / "c")
    # beyond FID: precision / recall / KID overall and per class at the chosen snapshot
    quality = {q["class"]: q for q in out["quality"]}
    assert list(quality) == ["all", "0", "1"]
    assert all(0 <= q["precision"] <= 1 and 0 <= q["recall"] <= 1 for q in out["quality"])
    # 40 and 24 images: class 0's subsets of 32 vary; class 1's would be its whole 24 images, so no spread
    assert quality["all"]["kid_std"] > 0 and quality["0"]["kid_std"] > 0 and quality["1"]["kid_std"] is None
    # the ancillary FID alone: its own column, no Inception one
    assert table.fid_ancillary.tolist() == table.fid.tolist() and table.fid_inception.isna().all()
    assert out["fid_ancillary"] == out["fid"] and out["fid_inception"] is None
    assert out["extractors"] == {"fid_ancillary": "ancillary:timm:linear"}

    # Inception selects (a stub network in place of torch-fidelity's), the ancillary FID is the second metric
    import ganaug.fid as fidmod

    class StubInception:
        metric, name = "fid_inception", "inception-v3-compat"

        def __init__(self, path):
            assert path == weights

        def features(self, images, batch_size=64, device=None):  # the same pixels / 2: FID c^2
            return images[:, 0, :4, 0].astype(float) / 2

    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"weights")
    monkeypatch.setattr(fidmod, "InceptionFeatures", StubInception)
    out2 = select_checkpoint(tmp_path, real, labels, tmp_path / "model.pt",
                             {"n_images": 64, "noise_seeds": 2, "grid_per_class": 2, "features": "inception",
                              "inception_weights": {"local": str(weights)}},
                             seed=1, device="cpu", out_selected=tmp_path / "selected2.json",
                             out_fid=tmp_path / "fid2.csv", out_grid=tmp_path / "grid2.png")
    t2 = pd.read_csv(tmp_path / "fid2.csv")
    assert list(t2.columns) == ["snapshot", "kimg", "fid", "kid", "kid_std", "metric", "extractor", "n_images",
                                "fid_inception", "fid_ancillary"]
    assert (t2.metric == "fid_inception").all() and (t2.extractor == "inception-v3-compat").all()
    assert t2.fid.tolist() == t2.fid_inception.tolist()
    np.testing.assert_allclose(t2.fid_inception, [9.0, 0.0, 1.0, 4.0], atol=1e-4)
    # the second metric: the same images on the ancillary features give the first run's FIDs
    np.testing.assert_allclose(t2.fid_ancillary, table.fid, rtol=1e-9)
    # on Inception FIDs nothing is within 0.3 of the lowest: kimg 2 is chosen, not the ancillary's kimg 4
    assert (out2["snapshot"], out2["best_snapshot"]) == ("snapshot-000002.pt", "snapshot-000002.pt")
    assert out2["metric"] == "fid_inception" and out2["fid_inception"] == out2["fid"]
    assert out2["fid_ancillary"] == pytest.approx(0.0, abs=1e-4)
    assert out2["extractors"] == {"fid_inception": "inception-v3-compat",
                                  "fid_ancillary": "ancillary:timm:linear"}
    # KID's default subsets of 1000 are the whole 64 images: no spread, the column stays (empty)
    assert t2.kid.notna().all() and t2.kid_std.isna().all()


def test_gan_table_has_table4_columns_and_per_class_quality():
    import pandas as pd

    from ganaug.selection import GAN_TABLE_COLUMNS, gan_table

    sel = {"snapshot": "snapshot-000004.pt", "kimg": 4.0, "fid": 12.5, "fid_seed_std": 0.1, "kid": 0.01,
           "metric": "fid_ancillary", "extractor": "ancillary:x", "n_images": 100, "best_kimg": 4.0,
           "best_fid": 12.5,
           "quality": [{"class": "all", "precision": 0.7, "recall": 0.4, "fid": 12.5, "kid": 0.01},
                       {"class": "0", "precision": 0.8, "recall": 0.5, "fid": 13.0, "kid": 0.02},
                       {"class": "1", "precision": 0.6, "recall": 0.3, "fid": None, "kid": 0.03}]}
    table = gan_table([("pgan", sel, {"kimg": 8.0, "seconds": 7200})])
    assert list(table.columns[:len(GAN_TABLE_COLUMNS)]) == GAN_TABLE_COLUMNS
    row = table.iloc[0]
    assert row["label"] == "pgn" and row["training_hours"] == 2 and row["trained_kimg"] == 8
    # a selected.json from before the second metric: the selection metric's column is its fid
    assert row["fid_ancillary"] == 12.5 and pd.isna(row["fid_inception"])
    sel2 = dict(sel, metric="fid_inception", extractor="inception-v3-compat", fid_inception=12.5, fid_ancillary=3.0)
    row2 = gan_table([("pgan", sel2, {"kimg": 8.0})]).iloc[0]
    assert (row2["metric"], row2["fid"], row2["fid_inception"], row2["fid_ancillary"]) == ("fid_inception", 12.5,
                                                                                          12.5, 3.0)
    assert (row["precision"], row["recall"]) == (0.7, 0.4)
    assert row["recall_melanoma"] == 0.3 and row["fid_benign"] == 13.0 and row["kid_melanoma"] == 0.03
    assert np.isnan(row["trained_epochs"]) and np.isnan(row["epoch"])  # a training.json without "images"


def test_gan_table_states_lengths_in_epochs_as_table4():
    """Epochs = kimg * 1000 / the images the GAN trained on (Table 4: StyleGAN2 565 epochs of 14,805 images,
    pix2pixHD 400 of the 2,594 masked ones)."""
    from ganaug.selection import gan_table

    def sel(kimg):
        return {"snapshot": f"snapshot-{int(kimg):06d}.pt", "kimg": kimg, "fid": 1.0, "metric": "fid_inception",
                "extractor": "x", "n_images": 10, "best_kimg": kimg, "best_fid": 1.0}

    table = gan_table([("stylegan2", sel(8364.825), {"kimg": 10000.0, "images": 14805}),
                       ("pix2pixhd", sel(1037.6), {"kimg": 1297.0, "images": 2594})]).set_index("gan")
    assert table.loc["stylegan2", "epoch"] == pytest.approx(565)
    assert table.loc["stylegan2", "trained_epochs"] == pytest.approx(10000 / 14.805)
    assert table.loc["pix2pixhd", "epoch"] == pytest.approx(400)
    assert table.loc["pix2pixhd", "trained_epochs"] == pytest.approx(500)
    assert list(table["train_images"]) == [14805, 2594]
    with pytest.raises(InputError, match="images"):
        gan_table([("pgan", sel(1.0), {"kimg": 2.0, "images": 0})])
