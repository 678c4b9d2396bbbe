"""pHash and ancillary scores of a pool (ganaug.pool.hash_pool / score_pool), checked image by image against
computations that share no code with them: imagehash's pHash, and a softmax cross-entropy in numpy of a
stand-in classifier whose logits are known from the pixels."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ganaug.io import InputError, save_npy
from ganaug.pool import hash_pool, score_pool


@pytest.fixture
def pool(tmp_path):
    """Two shards (5 and 3 images, 16 px); the table lists their images out of shard order, as a subset of
    a pool may. Image 0 of shard 0 is black: its pHash is all zero bits, "0000000000000000"."""
    rng = np.random.default_rng(0)
    shards = [rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8), rng.integers(0, 256, (3, 16, 16, 3),
                                                                                  dtype=np.uint8)]
    shards[0][0] = 0
    shards[1][1] = np.linspace(0, 255, 16, dtype=np.uint8)[None, :, None]  # a smooth ramp
    paths = []
    for k, images in enumerate(shards):
        paths.append(tmp_path / f"shard-{k:05d}.npy")
        save_npy(paths[-1], images)
    order = [(1, 2), (0, 3), (0, 0), (1, 0), (0, 4), (1, 1), (0, 1), (0, 2)]
    table = pd.DataFrame({"image": [f"{paths[k]}#{r}" for k, r in order],
                          "label": [1, 0, 0, 1, 1, 0, 1, 0], "shard": [k for k, _ in order],
                          "row": [r for _, r in order]})
    table.to_csv(tmp_path / "shards.csv", index=False)
    images = np.stack([shards[k][r] for k, r in order])
    return tmp_path / "shards.csv", table, images


def test_hash_pool_gives_each_image_its_imagehash_phash(pool, tmp_path):
    imagehash = pytest.importorskip("imagehash")
    shards_csv, table, images = pool
    out = hash_pool(shards_csv, tmp_path / "phash.csv")
    expected = [str(imagehash.phash(Image.fromarray(img))) for img in images]
    assert expected[2] == "0" * 16 and len(set(expected)) == len(expected)
    assert out["image"].tolist() == table["image"].tolist()
    assert out["phash"].tolist() == expected
    # the CSV keeps the 16 hex digits (leading zeros included) when read as text
    assert pd.read_csv(tmp_path / "phash.csv", dtype={"phash": str})["phash"].tolist() == expected


class _PixelLogits(torch.nn.Module):
    """Logits from the mean red and green in [0, 1]: 4 * (red - 0.5) for class 0, 2 * (green - 0.25) for 1."""

    def forward(self, x):
        m = x[:, :2].mean(dim=(2, 3))
        return torch.stack([4 * (m[:, 0] - 0.5), 2 * (m[:, 1] - 0.25)], dim=1)


def test_score_pool_is_the_cross_entropy_of_each_images_own_class(pool, tmp_path, monkeypatch):
    import ganaug.classifier.training as training
    from ganaug.classifier.models import ModelInfo

    shards_csv, table, images = pool
    info = ModelInfo(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_size=16, name="pixels", feature_dim=2)
    monkeypatch.setattr(training, "load_classifier", lambda path, device: (_PixelLogits(), info))
    hashes = pd.DataFrame({"image": table["image"], "phash": [f"{i:016x}" for i in range(len(table))]})
    hashes.to_csv(tmp_path / "phash.csv", index=False)
    out = score_pool(shards_csv, tmp_path / "phash.csv", "model.pt", tmp_path / "manifest.csv", "cpu",
                     batch_size=3)

    mean = images[..., :2].astype(np.float64).mean(axis=(1, 2)) / 255
    logit = np.stack([4 * (mean[:, 0] - 0.5), 2 * (mean[:, 1] - 0.25)], axis=1)
    log_softmax = logit - np.log(np.exp(logit).sum(axis=1, keepdims=True))
    labels = table["label"].to_numpy()
    assert out["image"].tolist() == table["image"].tolist() and out["label"].tolist() == labels.tolist()
    np.testing.assert_allclose(out["score"], -log_softmax[np.arange(len(labels)), labels], rtol=1e-5)
    np.testing.assert_allclose(out["prob"], np.exp(log_softmax[:, 1]), rtol=1e-5)
    # the two classes' scores differ for these images: a score of the other class would not pass
    assert np.abs(log_softmax[:, 0] - log_softmax[:, 1]).min() > 1e-3
    assert out["phash"].tolist() == hashes["phash"].tolist()
    written = pd.read_csv(tmp_path / "manifest.csv", dtype={"phash": str})
    assert written["phash"].tolist() == hashes["phash"].tolist()
    np.testing.assert_allclose(written["score"], out["score"])

    hashes.iloc[::-1].to_csv(tmp_path / "shuffled.csv", index=False)
    with pytest.raises(InputError, match="re-run hash_pool"):
        score_pool(shards_csv, tmp_path / "shuffled.csv", "model.pt", tmp_path / "m2.csv", "cpu")
