"""What the GAN tests share: toy label-map data, a cheap image feature, and the checks of training runs
(a straight run, a killed one, resumed runs equal to the straight one, FID going down)."""

import json

import numpy as np
import pytest
import torch

from ganaug.fid import fid_from_features
from ganaug.gans.training import TIMING_KEYS, generate, load_generator, load_snapshot, train_gan

# ------------------------------------------------------------------------------------------- data

COLORS = np.array([[0, 0, 0], [220, 180, 150], [90, 50, 30], [30, 30, 200], [200, 200, 40], [0, 160, 0],
                   [250, 250, 250], [120, 0, 120]], np.uint8)


def label_map_data(n=32, r=16, seed=0):
    """Label maps with a lesion disc (and a padding corner, some globules) -> images coloured by label.
    Returns (uint8 images N x r x r x 3, class labels, uint8 label maps N x r x r)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:r, :r]
    masks = np.ones((n, r, r), np.uint8)
    for i in range(n):
        cy, cx = rng.integers(r // 3, 2 * r // 3 + 1, 2).tolist()
        rad = int(rng.integers(r // 5, r // 3 + 1))
        masks[i][(yy - cy) ** 2 + (xx - cx) ** 2 < rad * rad] = 2
        masks[i][:2, :2] = 0
        if i % 3 == 0:
            masks[i][cy, cx] = 7
    return COLORS[masks], rng.integers(0, 2, n), masks


def class_data(n=40, r=16, seed=0):
    """Random uint8 images with a class-dependent look (class 1: red channel saturated), and their classes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    imgs = rng.integers(0, 256, (n, r, r, 3), dtype=np.uint8)
    imgs[labels == 1, :, :, 0] = 255
    return imgs, labels


def cheap_features(imgs):
    """A cheap fixed feature of uint8 NHWC images: 2 x 2 average-pooled pixels and per-channel std."""
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    return torch.cat([torch.nn.functional.avg_pool2d(x, x.shape[-1] // 2).flatten(1), x.std(dim=(2, 3))],
                     1).numpy()


def resolved_cfg(mod, cfg, **kw):
    """mod.resolve_config(cfg updated by kw), with num_classes 2 (as train_gan would set it)."""
    c = mod.resolve_config(dict(cfg, **kw))
    c["num_classes"] = 2
    return c


# ------------------------------------------------------------------------------------------- runs


def metrics_records(path):
    """The records of a metrics.jsonl without the timing keys (which differ between runs)."""
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in recs]


def _same(a, b):
    return torch.equal(a, b) if torch.is_tensor(a) else a == b


def assert_same_state(a, b, *keys):
    """Two snapshot dicts hold the same training state: networks, optimisers, image count and step, the
    RNG states of the trainer and the data order, and the GAN's own `keys` (tensors compared exactly)."""
    for key in ("G", "G_ema", "D"):
        assert a[key].keys() == b[key].keys()
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    for key in ("G_opt", "D_opt"):
        sa, sb = a[key]["state"], b[key]["state"]
        assert sa.keys() == sb.keys() and len(sa) > 0
        for i in sa:
            for k in sa[i]:
                assert torch.equal(sa[i][k], sb[i][k]), (key, i, k)
        assert a[key]["param_groups"] == b[key]["param_groups"]
    for key in ("images_seen", "step", *keys):
        assert _same(a[key], b[key]), key
    for key in ("gen", "data_gen"):
        assert torch.equal(a["rng"][key], b["rng"][key]), key
    assert torch.equal(a["data"]["perm"], b["data"]["perm"])


def assert_same_run(expected_dir, run_dir, snapshots, *keys):
    """The snapshots (see assert_same_state) and metrics.jsonl of run_dir equal those of expected_dir."""
    for name in snapshots:
        assert_same_state(load_snapshot(expected_dir / name), load_snapshot(run_dir / name), *keys)
    assert metrics_records(run_dir / "metrics.jsonl") == metrics_records(expected_dir / "metrics.jsonl")


def train_straight(tmp_path_factory, gan, images, labels, cfg, masks=None):
    """An uninterrupted run (seed 3, CPU, one thread) in a fresh directory: (directory, summary)."""
    out = tmp_path_factory.mktemp("straight")
    torch.set_num_threads(1)  # module fixtures run before conftest's per-test setting; resume runs use 1
    summary = train_gan(gan, images, labels, out, cfg, seed=3, device="cpu", masks=masks)
    return out, summary


class Killed(Exception):
    pass


def _gan(mod):
    """The GAN name of module ganaug.gans.<name>."""
    return mod.__name__.rsplit(".", 1)[-1]


def train_killed(mod, kill_step, images, labels, out_dir, cfg, masks=None):
    """A run (seed 3, CPU) of the GAN of module `mod` that dies when its trainer is about to take step
    `kill_step`: what it leaves in out_dir is what a crash would."""
    step = mod.Trainer.train_step

    def dying_step(self):
        if self.step == kill_step:
            raise Killed
        step(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mod.Trainer, "train_step", dying_step)
        with pytest.raises(Killed):
            train_gan(_gan(mod), images, labels, out_dir, cfg, seed=3, device="cpu", masks=masks)


def assert_killed_run_resumes(mod, kill_step, straight, out_dir, cfg, images, labels, masks=None, kept=()):
    """A run killed before step `kill_step` (train_killed) leaves the snapshots `kept`; resumed, it ends
    with the same snapshots and metrics as the straight run (out, summary)."""
    out, summary = straight
    train_killed(mod, kill_step, images, labels, out_dir, cfg, masks)
    assert sorted(p.name for p in out_dir.glob("snapshot-*")) == list(kept)
    resumed = train_gan(_gan(mod), images, labels, out_dir, cfg, seed=3, device="cpu", masks=masks)
    assert resumed["snapshots"] == summary["snapshots"]
    assert_same_run(out, out_dir, summary["snapshots"])


def assert_fid_falls(Generator, out, snapshots, imgs, labels, masks=None):
    """FID (on cheap_features) of the last snapshot is below that of the first and below half that of an
    untrained generator (built from the first snapshot's arch, seed 0)."""
    fr = cheap_features(imgs)

    def fid(G):
        return fid_from_features(fr, cheap_features(generate(G, labels, 0, "cpu", masks=masks)))

    untrained = Generator(**load_snapshot(out / snapshots[0])["arch"], seed=0).eval()
    fids = [fid(load_generator(out / name, "cpu")) for name in snapshots]
    assert fids[-1] < fids[0] and fids[-1] < 0.5 * fid(untrained), fids
