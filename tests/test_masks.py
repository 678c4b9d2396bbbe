"""Label maps for the translation GANs: building, reading, checking, caching."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ganaug.io import InputError
from ganaug.masks import (
    NUM_LABELS,
    build_label_map,
    build_mask_cache,
    check_label_maps,
    dihedral,
    load_mask_cache,
    masked_training_data,
    read_label_map,
)


def test_build_label_map_priorities():
    lesion = np.zeros((6, 6), bool)
    lesion[1:5, 1:5] = True
    net = np.zeros((6, 6), np.uint8)
    net[2, 2] = 255
    glob = np.zeros((6, 6), np.uint8)
    glob[2, 2:4] = 1  # overlaps the pigment network at (2, 2): the later attribute wins
    fov = np.ones((6, 6), bool)
    fov[0, :] = False
    lm = build_label_map(lesion, {"pigment_network": net, "globules": glob}, field_of_view=fov)
    assert lm.dtype == np.uint8
    assert (lm[0] == 0).all()                      # padding
    assert lm[5, 0] == 1 and lm[1, 1] == 2         # skin, lesion
    assert lm[2, 2] == 7 and lm[2, 3] == 7         # globules over pigment network
    same = build_label_map(lesion, [net, None, None, None, glob], field_of_view=fov)
    assert np.array_equal(lm, same)
    with pytest.raises(InputError, match="unknown attribute 'dots'"):
        build_label_map(lesion, {"dots": net})
    with pytest.raises(InputError, match="streaks"):
        build_label_map(lesion, {"streaks": np.zeros((3, 3))})


def _write(path, array):
    Image.fromarray(array).save(path)
    return str(path)


def test_read_label_map_resizes_nearest_and_rejects_bad_maps(tmp_path):
    lm = np.zeros((8, 8), np.uint8)
    lm[:4] = 2
    lm[4:, 4:] = 7
    img = _write(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    path = _write(tmp_path / "a_mask.png", lm)
    small = read_label_map(path, 4, image_path=img)
    assert small.dtype == np.uint8 and small.shape == (4, 4)
    assert set(np.unique(small)) <= {0, 2, 7}  # nearest: no blended values
    assert np.array_equal(read_label_map(path), lm)
    bad = _write(tmp_path / "bad.png", np.full((8, 8), 9, np.uint8))
    with pytest.raises(InputError, match=r"bad.png: label value 9 outside the label map 0..7"):
        read_label_map(bad)
    other = _write(tmp_path / "big.png", np.zeros((10, 8, 3), np.uint8))
    with pytest.raises(InputError, match=r"a_mask.png: label map is 8 x 8 but its image .*big.png is 8 x 10"):
        read_label_map(path, image_path=other)
    rgb = _write(tmp_path / "rgb.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="one-channel"):
        read_label_map(rgb)
    with pytest.raises(InputError, match="not found"):
        read_label_map(tmp_path / "missing.png")


def test_mask_cache_keeps_rows_with_maps(tmp_path):
    rows = []
    for i in range(5):
        img = _write(tmp_path / f"i{i}.png", np.full((8, 8, 3), i, np.uint8))
        mask = _write(tmp_path / f"m{i}.png", np.full((8, 8), i % NUM_LABELS, np.uint8)) if i != 2 else ""
        rows.append({"image": img, "label": i % 2, "mask": mask})
    csv = tmp_path / "train.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    table = build_mask_cache(csv, tmp_path / "m.npy", tmp_path / "m.csv", 4)
    assert table["row"].tolist() == [0, 1, 3, 4]
    masks, table2 = load_mask_cache(tmp_path / "m.npy", tmp_path / "m.csv")
    assert masks.shape == (4, 4, 4) and masks[2, 0, 0] == 3
    images = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    imgs, labels, maps, _ = masked_training_data(images, tmp_path / "m.npy", tmp_path / "m.csv")
    assert imgs[:, 0, 0, 0].tolist() == [0, 1, 3, 4] and labels.tolist() == [0, 1, 1, 0]
    with pytest.raises(InputError, match="px"):
        masked_training_data(np.zeros((5, 8, 8, 3), np.uint8), tmp_path / "m.npy", tmp_path / "m.csv")
    pd.DataFrame(rows).drop(columns="mask").to_csv(csv, index=False)
    with pytest.raises(InputError, match=r"train.csv: no 'mask' column"):
        build_mask_cache(csv, tmp_path / "x.npy", tmp_path / "x.csv", 4)
    pd.DataFrame(rows).assign(mask="").to_csv(csv, index=False)
    with pytest.raises(InputError, match="no row has a label map"):
        build_mask_cache(csv, tmp_path / "x.npy", tmp_path / "x.csv", 4)


def test_check_label_maps_and_dihedral():
    maps = np.random.default_rng(0).integers(0, NUM_LABELS, (3, 5, 5), dtype=np.uint8)
    check_label_maps(maps, (3, 5, 5))
    with pytest.raises(InputError, match="outside the label map"):
        check_label_maps(maps + 8, (3, 5, 5))
    with pytest.raises(InputError, match="expected uint8 3 x 4 x 4"):
        check_label_maps(maps, (3, 4, 4))
    variants = {dihedral(maps, k).tobytes() for k in range(8)}
    assert len(variants) == 8 and np.array_equal(dihedral(maps, 0), maps) and np.array_equal(dihedral(maps, 8), maps)
