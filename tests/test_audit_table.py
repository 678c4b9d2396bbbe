"""The audit table (ganaug.audit.audit_table, written by workflow/scripts/audit_table.py from each GAN's
summary.json): one row per GAN, measure and threshold, every number in its own column."""

import json

import numpy as np
import pandas as pd

from ganaug.audit import audit, audit_table

COLUMNS = ["gan", "measure", "n_synth", "n_real", "median_synth_to_real", "median_real_to_real", "source",
           "source_fraction", "median_synth_to_source", "real_to_real_excludes", "threshold", "synth",
           "synth_fraction", "real", "real_fraction"]


def test_audit_table_from_an_audit_with_known_distances():
    """Real hashes 0, 0xF and 0xFF00: each real image's nearest other real is 4, 4 and 8 bits away. Synthetic
    hashes 0, 0x1 and 16 high bits: 0, 1 and 16 bits from their nearest real image."""
    real = np.array([0x0, 0xF, 0xFF00], dtype=np.uint64)
    synth = np.array([0x0, 0x1, 0xFFFF << 48], dtype=np.uint64)
    _, summary = audit(synth, real, thresholds={"hash": [0, 4, 8]})
    summary = json.loads(json.dumps({"gan": "pgan", **summary}))  # as the workflow reads summary.json
    table = audit_table([summary])
    expected = pd.DataFrame([
        ["pgan", "phash_distance", 3, 3, 1.0, 4.0, None, None, None, "self", 0, 1, 1 / 3, 0, 0.0],
        ["pgan", "phash_distance", 3, 3, 1.0, 4.0, None, None, None, "self", 4, 2, 2 / 3, 2, 2 / 3],
        ["pgan", "phash_distance", 3, 3, 1.0, 4.0, None, None, None, "self", 8, 2, 2 / 3, 3, 1.0],
    ], columns=COLUMNS)
    pd.testing.assert_frame_equal(table, expected)


def _block(median_s2r, median_r2r, near, source=None):
    out = {"synth_to_real": {"n": 10, "mean": 0.0, "quantiles": {"0": 0.0, "0.5": median_s2r, "1": 9.0}},
           "real_to_real": {"n": 20, "mean": 0.0, "quantiles": {"0": 0.0, "0.5": median_r2r, "1": 9.0}},
           "near_copies": near}
    if source is not None:
        out["synth_to_source"] = {"n": 10, "mean": 0.0, "quantiles": {"0.5": source}}
    return out


def test_audit_table_of_hand_made_summaries():
    """A translation GAN (cosine too, sources, lesion-aware baseline) and a class-conditional one: each value
    of the summaries lands in its column, and the class-conditional GAN's source columns stay empty."""
    spade = {"gan": "spade", "n_synth": 10, "n_real": 20, "real_to_real_excludes": "same lesion_id",
             "hash": _block(11.0, 9.0, [{"threshold": 4, "synth": 1, "synth_fraction": 0.1, "real": 3,
                                         "real_fraction": 0.15, "source": 6, "source_fraction": 0.6}], 2.0),
             "cos": _block(0.8, 0.85, [{"threshold": 0.95, "synth": 2, "synth_fraction": 0.2, "real": 5,
                                        "real_fraction": 0.25, "source": 7, "source_fraction": 0.7}], 0.97)}
    sgn = {"gan": "stylegan2", "n_synth": 10, "n_real": 20,
           "hash": _block(13.0, 9.0, [{"threshold": 0, "synth": 0, "synth_fraction": 0.0, "real": 2,
                                       "real_fraction": 0.1}])}
    table = audit_table([spade, sgn])
    expected = pd.DataFrame([
        ["spade", "phash_distance", 10, 20, 11.0, 9.0, 6, 0.6, 2.0, "same lesion_id", 4, 1, 0.1, 3, 0.15],
        ["spade", "cosine", 10, 20, 0.8, 0.85, 7, 0.7, 0.97, "same lesion_id", 0.95, 2, 0.2, 5, 0.25],
        ["stylegan2", "phash_distance", 10, 20, 13.0, 9.0, None, None, None, "self", 0, 0, 0.0, 2, 0.1],
    ], columns=COLUMNS)
    pd.testing.assert_frame_equal(table, expected)
