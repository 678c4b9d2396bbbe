"""Pool generation: resumable shards that are regenerated when the snapshot or the settings change;
the pool of a translation GAN is its training label maps, translated."""

import json

import gan_helpers as gh
import numpy as np
import pandas as pd
import pytest

from ganaug.gans.training import train_gan
from ganaug.io import InputError
from ganaug.pool import generate_pool

SGN = dict(resolution=16, z_dim=16, w_dim=16, mapping_layers=1, channel_base=256, channel_max=16, batch=8,
           total_kimg=0.016, snapshot_kimg=0.016)
P2P = dict(resolution=16, ngf=8, n_blocks=1, ndf=8, batch=8, total_kimg=0.016, snapshot_kimg=0.016)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    images, labels, maps = gh.label_map_data(n=24, r=16)
    out = {}
    for gan, cfg in (("stylegan2", SGN), ("pix2pixhd", P2P)):
        d = tmp_path_factory.mktemp(gan)
        s = train_gan(gan, images, labels, d, cfg, seed=1, device="cpu", masks=maps if gan == "pix2pixhd" else None)
        (d / "selected.json").write_text(json.dumps({"snapshot": s["snapshots"][-1],
                                                     "path": str(d / s["snapshots"][-1])}))
        out[gan] = d / "selected.json"
    return out, maps, labels


def test_shards_resume_and_are_regenerated_when_stale(trained, tmp_path):
    selected, _, _ = trained
    kw = dict(gan="stylegan2", out_dir=tmp_path, out_csv=tmp_path / "shards.csv", n_per_class=10, shard_size=8,
              seed=3, device="cpu")
    table = generate_pool(selected["stylegan2"], **kw)
    assert len(table) == 20 and table["label"].tolist() == [0] * 10 + [1] * 10
    shards = sorted((tmp_path / "shards").glob("shard-*.npy"))
    assert len(shards) == 3
    first = np.load(shards[0])
    shards[1].unlink()  # a job killed before its second shard
    mtime0 = shards[0].stat().st_mtime_ns
    generate_pool(selected["stylegan2"], **kw)
    assert shards[0].stat().st_mtime_ns == mtime0 and shards[1].exists()  # only the missing shard regenerated
    # another truncation: every shard is regenerated, never reused
    generate_pool(selected["stylegan2"], **kw, truncation_psi=0.5)
    assert not np.array_equal(np.load(shards[0]), first)
    generate_pool(selected["stylegan2"], **kw)
    assert np.array_equal(np.load(shards[0]), first)  # the same settings give the same images


def test_translation_pool_is_the_training_maps(trained, tmp_path):
    selected, maps, labels = trained
    rows = pd.DataFrame({"image": [f"real{i}.png" for i in range(len(maps))], "label": labels})
    table = generate_pool(selected["pix2pixhd"], gan="pix2pixhd", out_dir=tmp_path, out_csv=tmp_path / "s.csv",
                          n_per_class=1000, shard_size=10, seed=3, device="cpu", masks=maps, mask_table=rows,
                          copies_per_mask=2)
    assert len(table) == 2 * len(maps)  # n_per_class does not apply: every map, twice
    assert table["source_image"].tolist() == rows["image"].tolist() * 2
    assert table["label"].tolist() == rows["label"].tolist() * 2  # the class of the map's real image
    imgs = np.concatenate([np.load(p) for p in sorted((tmp_path / "shards").glob("*.npy"))])
    assert not np.array_equal(imgs[0], imgs[len(maps)])  # the second copy comes from a flipped/rotated map
    with pytest.raises(InputError, match="copies_per_mask"):
        generate_pool(selected["pix2pixhd"], gan="pix2pixhd", out_dir=tmp_path / "x", out_csv=tmp_path / "x.csv",
                      n_per_class=1, shard_size=10, seed=3, device="cpu", masks=maps, mask_table=rows,
                      copies_per_mask=9)
    with pytest.raises(InputError, match="needs the training label maps"):
        generate_pool(selected["pix2pixhd"], gan="pix2pixhd", out_dir=tmp_path / "y", out_csv=tmp_path / "y.csv",
                      n_per_class=1, shard_size=10, seed=3, device="cpu")
