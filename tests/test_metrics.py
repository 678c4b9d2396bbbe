import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ganaug.io import InputError
from ganaug.metrics import roc_auc


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    scores = np.round(rng.normal(size=n) + 0.7 * y, 1)  # rounding makes many ties
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_roc_auc_edge_values():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert roc_auc([0, 1, 1], [0.2, 0.2, 0.9]) == 0.75


def test_roc_auc_errors():
    with pytest.raises(InputError, match="both classes"):
        roc_auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="0 or 1"):
        roc_auc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="NaN"):
        roc_auc([0, 1], [0.1, np.nan])
    with pytest.raises(InputError, match="labels but"):
        roc_auc([0, 1], [0.1])
