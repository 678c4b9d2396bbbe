"""StyleGAN2 training loop: snapshots, metrics, exact resume, generation."""

import json
import shutil

import gan_helpers as gh
import numpy as np
import pytest
import torch

from ganaug.gans.stylegan2 import DEFAULTS
from ganaug.gans.training import (
    generate,
    load_generator,
    load_snapshot,
    sample_grid,
    save_png,
    snapshot_kimg,
    snapshot_name,
    snapshot_schedule,
    train_gan,
)
from ganaug.io import InputError

# tiny but complete: ADA moving fast (interval 3, not aligned with snapshots), R1 every 2 steps,
# path-length reg every 2 steps, style mixing on
CFG = dict(resolution=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16,
           batch=8, r1_interval=2, pl_weight=2.0, pl_interval=2, ada=True, ada_kimg=0.05, ada_interval=3,
           ada_target=0.0, ema_kimg=0.05, total_kimg=0.128, snapshot_kimg=0.032)


@pytest.fixture(scope="module")
def data():
    return gh.class_data()


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    return gh.train_straight(tmp_path_factory, "stylegan2", *data, CFG)


def test_snapshot_names_and_schedule():
    assert snapshot_name(12000) == "snapshot-000012.pt"
    assert snapshot_name(32) == "snapshot-000000_032.pt"
    assert snapshot_kimg("snapshot-000012.pt") == 12.0
    assert snapshot_kimg("x/snapshot-000001_500.pt") == 1.5
    names = [n for _, n in snapshot_schedule(dict(total_kimg=5, snapshot_kimg=2))]
    assert names == ["snapshot-000002.pt", "snapshot-000004.pt", "snapshot-000005.pt"]
    assert sorted(["snapshot-000001_500.pt", "snapshot-000001.pt", "snapshot-000000_032.pt"]) == \
        ["snapshot-000000_032.pt", "snapshot-000001.pt", "snapshot-000001_500.pt"]
    with pytest.raises(InputError):
        snapshot_kimg("model.pt")


def test_straight_run_snapshots_and_metrics(straight):
    out, summary = straight
    assert summary["snapshots"] == [n for _, n in snapshot_schedule(CFG)]
    assert summary["kimg"] == pytest.approx(0.128)
    assert summary["images"] == 40  # the training images: kimg * 1000 / images = epochs (gan_fid.csv)
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["snapshot"] for r in recs] == summary["snapshots"]
    assert [r["images_seen"] for r in recs] == [32, 64, 96, 128]
    for r in recs:
        for k in ("kimg", "loss_G", "loss_D", "r1", "pl", "augment_p", "sec_per_kimg", "img_per_s",
                  "wall_time"):
            assert r[k] is not None and np.isfinite(r[k]), k
    assert recs[-1]["augment_p"] > 0  # ADA adapted (target 0 -> p rises quickly)
    s = load_snapshot(out / summary["snapshots"][-1])
    assert s["images_seen"] == 128 and s["cfg"]["resolution"] == 16 and s["num_classes"] == 2


def test_killed_and_resumed_equals_straight(straight, data, tmp_path):
    out, summary = straight
    # "killed" after the 0.064 kimg snapshot: a run with a smaller total, then the full call
    part = train_gan("stylegan2", *data, tmp_path, dict(CFG, total_kimg=0.064), seed=3, device="cpu")
    assert part["snapshots"] == ["snapshot-000000_032.pt", "snapshot-000000_064.pt"]
    mid = load_snapshot(tmp_path / "snapshot-000000_064.pt")
    assert mid["images_seen"] == 64 and mid["step"] == 8
    assert len(mid["G_opt"]["state"]) > 0  # optimiser state is in the snapshot
    resumed = train_gan("stylegan2", *data, tmp_path, CFG, seed=3, device="cpu")
    assert resumed["snapshots"] == summary["snapshots"]
    gh.assert_same_run(out, tmp_path, summary["snapshots"], "ada", "pl_mean")


def test_resume_after_lost_snapshots_truncates_metrics(straight, data, tmp_path):
    out, summary = straight
    for f in out.iterdir():
        shutil.copy(f, tmp_path / f.name)
    # crash scenario: the last two snapshots are gone but metrics.jsonl has their lines
    for name in summary["snapshots"][-2:]:
        (tmp_path / name).unlink()
    train_gan("stylegan2", *data, tmp_path, CFG, seed=3, device="cpu")
    gh.assert_same_run(out, tmp_path, summary["snapshots"][-1:], "ada", "pl_mean")
    # finished: calling again changes nothing
    before = (tmp_path / "metrics.jsonl").read_text()
    again = train_gan("stylegan2", *data, tmp_path, CFG, seed=3, device="cpu")
    assert again["kimg"] == pytest.approx(0.128)
    assert (tmp_path / "metrics.jsonl").read_text() == before


def test_resume_with_changed_config_is_refused(straight, data, tmp_path):
    out, summary = straight
    shutil.copy(out / summary["snapshots"][0], tmp_path / summary["snapshots"][0])
    with pytest.raises(InputError, match=r"gans\.stylegan2\.lr"):
        train_gan("stylegan2", *data, tmp_path, dict(CFG, lr=0.01), seed=3, device="cpu")
    with pytest.raises(InputError, match="seed"):
        train_gan("stylegan2", *data, tmp_path, CFG, seed=4, device="cpu")
    # the workflow's mode: a changed config sets the earlier run aside and trains afresh
    first = (tmp_path / summary["snapshots"][0]).read_bytes()
    again = train_gan("stylegan2", *data, tmp_path, dict(CFG, lr=0.01, total_kimg=0.032), seed=3, device="cpu",
                      restart_on_change=True)
    kept = list((tmp_path / "superseded").glob("*/" + summary["snapshots"][0]))
    assert len(kept) == 1 and kept[0].read_bytes() == first  # nothing finished is lost
    assert again["snapshots"] == [summary["snapshots"][0]]
    assert load_snapshot(tmp_path / summary["snapshots"][0])["cfg"]["lr"] == 0.01


def test_run_of_other_code_is_trained_afresh(straight, data, tmp_path):
    """The workflow passes the hash of the GAN's code: when Snakemake re-runs train_gan because the code
    changed, the finished run of the old code is set aside, not reloaded as if it were this code's."""
    out, summary = straight
    cfg = dict(CFG, total_kimg=0.032)
    first = train_gan("stylegan2", *data, tmp_path, cfg, seed=3, device="cpu", code_version="a")
    name = first["snapshots"][0]
    assert load_snapshot(tmp_path / name)["code_version"] == "a"
    before = (tmp_path / name).read_bytes()
    train_gan("stylegan2", *data, tmp_path, cfg, seed=3, device="cpu", code_version="a", restart_on_change=True)
    assert (tmp_path / name).read_bytes() == before  # same code: the finished run stands
    with pytest.raises(InputError, match="other code"):
        train_gan("stylegan2", *data, tmp_path, cfg, seed=3, device="cpu", code_version="b")
    train_gan("stylegan2", *data, tmp_path, cfg, seed=3, device="cpu", code_version="b", restart_on_change=True)
    assert load_snapshot(tmp_path / name)["code_version"] == "b"
    assert [p.read_bytes() for p in (tmp_path / "superseded").glob("*/" + name)] == [before]


def test_bad_inputs(data, tmp_path):
    imgs, labels = data
    with pytest.raises(InputError, match=r"gans\.stylegan2\.foo"):
        train_gan("stylegan2", imgs, labels, tmp_path, dict(CFG, foo=1), seed=0, device="cpu")
    with pytest.raises(InputError, match="uint8 N x 32 x 32 x 3"):
        train_gan("stylegan2", imgs, labels, tmp_path, dict(CFG, resolution=32), seed=0, device="cpu")
    with pytest.raises(InputError, match="labels"):
        train_gan("stylegan2", imgs, labels[:-1], tmp_path, CFG, seed=0, device="cpu")
    with pytest.raises(InputError, match="resolution"):
        train_gan("stylegan2", imgs, labels, tmp_path, dict(CFG, resolution=24), seed=0, device="cpu")
    assert set(CFG) <= set(DEFAULTS)


def test_load_generator_and_generate(straight, tmp_path):
    out, summary = straight
    path = out / summary["snapshots"][-1]
    G = load_generator(path, "cpu")
    s = load_snapshot(path)
    for k, v in G.state_dict().items():
        assert torch.equal(v, s["G_ema"][k])
    assert not G.training
    labels = np.array([0, 1, 1, 0, 1, 0, 0])
    a = generate(G, labels, seed=7, device="cpu", batch_size=3)
    b = generate(G, labels, seed=7, device="cpu", batch_size=64)
    assert a.dtype == np.uint8 and a.shape == (7, 16, 16, 3)
    assert np.array_equal(a, b)
    c = generate(G, labels, seed=8, device="cpu")
    assert not np.array_equal(a, c)
    # the raw generator is different from the EMA one
    G_raw = load_generator(path, "cpu", ema=False)
    assert not torch.equal(G_raw.synthesis.blocks[0].const, G.synthesis.blocks[0].const)
    grid = sample_grid(G, 4, seed=0, device="cpu")
    assert grid.shape == (2 * 16, 4 * 16, 3) and grid.dtype == np.uint8
    # rows are classes: row 1 equals the class-1 images of the same seed
    ref = generate(G, np.repeat([0, 1], 4), seed=0, device="cpu")
    assert np.array_equal(grid[16:32, 16:32], ref[5])
    save_png(tmp_path / "g.png", grid)
    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g.png")), grid)
    with pytest.raises(InputError):
        load_generator(tmp_path / "missing.pt", "cpu")
    with pytest.raises(InputError, match="labels"):
        generate(G, np.array([2]), seed=0, device="cpu")


# the original StyleGAN2's settings (config/paper.yaml): no ADA, no mirroring, no EMA ramp-up,
# 8 mapping layers
ORIGINAL = dict(CFG, mapping_layers=8, ada=False, mirror=False, ema_rampup=None, r1_interval=4,
                total_kimg=0.064, snapshot_kimg=0.032)


def test_original_stylegan2_settings_resume_exactly(data, tmp_path_factory, tmp_path):
    straight = gh.train_straight(tmp_path_factory, "stylegan2", *data, ORIGINAL)
    recs = [json.loads(line) for line in (straight[0] / "metrics.jsonl").read_text().splitlines()]
    assert [r["augment_p"] for r in recs] == [0.0, 0.0]  # no ADA
    assert load_snapshot(straight[0] / recs[-1]["snapshot"])["ada"] is None
    from ganaug.gans import stylegan2

    gh.assert_killed_run_resumes(stylegan2, 6, straight, tmp_path, ORIGINAL, *data,
                                 kept=["snapshot-000000_032.pt"])


def test_paper_config_trains_each_gan_past_its_table4_epoch():
    """config/paper.yaml: each GAN resolves, trains past the epoch the study selected (Table 4) and has
    snapshots on both sides of it within 7% (what the FID rule chooses among)."""
    from pathlib import Path

    import yaml

    from ganaug.gans import gan_module
    from ganaug.gans.pgan import schedule

    gans = yaml.safe_load((Path(__file__).parents[1] / "config/paper.yaml").read_text())["gans"]
    images = dict(stylegan2=14805, pgan=14805, pix2pixhd=2594, spade=2594)  # training / masked images
    table4 = dict(stylegan2=565, pgan=890, pix2pixhd=400, spade=300)
    for gan, epochs in table4.items():
        cfg = gan_module(gan).resolve_config(dict(gans[gan]))
        points = [p / images[gan] for p, _ in snapshot_schedule(cfg)]
        assert points[-1] > epochs * 1.07, gan
        assert any(epochs * 0.93 <= p <= epochs + 1e-9 for p in points), gan
        assert any(epochs + 1e-9 < p <= epochs * 1.07 for p in points), gan
        assert 10 <= len(points) <= 60, gan  # enough to choose among, few enough to store
    assert gans["stylegan2"]["ada"] is False and gans["stylegan2"]["mapping_layers"] == 8
    pgan = gan_module("pgan").resolve_config(dict(gans["pgan"]))
    full = next(k for k in range(0, 20000, 100) if schedule(k * 1000, pgan) == (6, 1.0))  # 256 px, no fade
    assert 4 * 2 ** 6 == pgan["resolution"] and pgan["total_kimg"] - full >= pgan["total_kimg"] / 2
