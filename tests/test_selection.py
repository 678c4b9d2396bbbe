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


def test_select_checkpoint_end_to_end(tmp_path, monkeypatch):
    """The FID loop over snapshots with stub generators (quality set by kimg) and a tiny domain model."""
    import json

    import numpy as np
    import pandas as pd
    import torch
    from PIL import Image

    import ganaug.classifier.training as ct
    from ganaug.gans import training as gt
    from ganaug.selection import select_checkpoint

    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    labels = np.r_[np.zeros(40, int), np.ones(24, int)]
    for name in ("snapshot-000001.pt", "snapshot-000002.pt", "snapshot-000004.pt", "unrelated.txt"):
        (tmp_path / name).write_bytes(b"")

    class StubG:
        num_classes, z_dim = 2, 8

        def __init__(self, kimg):
            self.mix = {1.0: 0.8, 2.0: 0.3, 4.0: 0.02}[kimg]  # blend toward grey: worse early

    def fake_generate(G, labels_, seed, device, **kw):
        r = np.random.default_rng(seed)
        base = r.integers(0, 256, (len(labels_), 16, 16, 3)).astype(float)
        return np.round(G.mix * 128 + (1 - G.mix) * base).astype(np.uint8)

    monkeypatch.setattr(gt, "load_generator", lambda path, device, ema=True: StubG(gt.snapshot_kimg(path)))
    monkeypatch.setattr(gt, "generate", fake_generate)
    monkeypatch.setattr(gt, "sample_grid", lambda G, n, seed, device, **kw: np.zeros((32, 16 * n, 3), np.uint8))

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
    out = select_checkpoint(tmp_path, real, labels, tmp_path / "model.pt",
                            {"n_images": 48, "tolerance": 0.3, "noise_seeds": 3, "grid_per_class": 2,
                             "inception_weights": None},
                            seed=1, device="cpu", out_selected=tmp_path / "selected.json",
                            out_fid=tmp_path / "fid.csv", out_grid=tmp_path / "grid.png")
    table = pd.read_csv(tmp_path / "fid.csv")
    assert table.snapshot.tolist() == ["snapshot-000001.pt", "snapshot-000002.pt", "snapshot-000004.pt"]
    assert (table.metric == "fid_ancillary").all() and (table.extractor == "ancillary:timm:tiny").all()
    assert table.fid.iloc[0] > table.fid.iloc[1] > table.fid.iloc[2]  # the greyer generator is further from the reals
    assert (out["kimg"], out["fid"]) == pytest.approx(select_snapshot(zip(table.kimg, table.fid), 0.3))
    assert json.loads((tmp_path / "selected.json").read_text()) == out
    assert len(out["fid_seed_values"]) == 3 and out["fid_seed_std"] >= 0 and out["n_images"] == 48
    assert Image.open(tmp_path / "grid.png").size == (32, 32)
    with pytest.raises(InputError, match="no snapshot"):
        select_checkpoint(tmp_path / "empty", real, labels, None, {}, 1, "cpu", tmp_path / "a", tmp_path / "b",
                          tmp_path / "c")
    # beyond FID: precision / recall / KID overall and per class at the chosen snapshot
    assert [q["class"] for q in out["quality"]] == ["all", "0", "1"]
    assert all(0 <= q["precision"] <= 1 and 0 <= q["recall"] <= 1 for q in out["quality"])
    # the ancillary FID alone: its own column, no Inception one
    assert table.fid_ancillary.tolist() == table.fid.tolist() and table.fid_inception.isna().all()
    assert out["fid_ancillary"] == out["fid"] and out["fid_inception"] is None
    assert out["extractors"] == {"fid_ancillary": "ancillary:timm:tiny"}

    # Inception selects (a stub network in place of torch-fidelity's), the ancillary FID is the second metric
    import ganaug.fid as fidmod

    class StubInception:
        metric, name = "fid_inception", "inception-v3-compat"

        def __init__(self, path):
            assert path == weights

        def features(self, images, batch_size=64, device=None):  # 4 x 4 block means: another feature space
            x = images.astype(float).reshape(len(images), 4, 4, 4, 4, 3).mean(axis=(2, 4))
            return x.reshape(len(images), -1) / 255

    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"weights")
    monkeypatch.setattr(fidmod, "InceptionFeatures", StubInception)
    out2 = select_checkpoint(tmp_path, real, labels, tmp_path / "model.pt",
                             {"n_images": 48, "noise_seeds": 2, "grid_per_class": 2, "features": "inception",
                              "inception_weights": {"local": str(weights)}},
                             seed=1, device="cpu", out_selected=tmp_path / "selected2.json",
                             out_fid=tmp_path / "fid2.csv", out_grid=tmp_path / "grid2.png")
    t2 = pd.read_csv(tmp_path / "fid2.csv")
    assert list(t2.columns) == ["snapshot", "kimg", "fid", "kid", "kid_std", "metric", "extractor", "n_images",
                                "fid_inception", "fid_ancillary"]
    assert (t2.metric == "fid_inception").all() and (t2.extractor == "inception-v3-compat").all()
    assert t2.fid.tolist() == t2.fid_inception.tolist()
    # the second metric: the same images on the ancillary features give the first run's FIDs
    np.testing.assert_allclose(t2.fid_ancillary, table.fid, rtol=1e-9)
    assert not np.allclose(t2.fid, t2.fid_ancillary)
    assert (out2["kimg"], out2["fid"]) == pytest.approx(select_snapshot(zip(t2.kimg, t2.fid_inception), 0.3))
    assert out2["metric"] == "fid_inception" and out2["fid_inception"] == out2["fid"]
    assert out2["fid_ancillary"] == pytest.approx(float(t2.fid_ancillary[t2.kimg == out2["kimg"]].iloc[0]))
    assert out2["extractors"] == {"fid_inception": "inception-v3-compat", "fid_ancillary": "ancillary:timm:tiny"}


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
