"""Where the tests find the study authors' published split lists: the unchanged copies in the shared folder
beside the checkout (here and in CI), or GANAUG_AUTHORS_SPLITS; tests that need them skip, saying why."""

import os
from pathlib import Path

import pytest

SPLITS = Path(
    os.environ.get(
        "GANAUG_AUTHORS_SPLITS", Path(__file__).resolve().parents[2] / "shared" / "reference" / "authors-splits"
    )
)
needs_splits = pytest.mark.skipif(
    not (SPLITS / "isic2019-val.csv").exists(),
    reason=f"the authors' published split lists are not at {SPLITS} (set GANAUG_AUTHORS_SPLITS)",
)
