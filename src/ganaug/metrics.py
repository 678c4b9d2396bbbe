"""Evaluation metrics. ROC AUC is computed here (own implementation) so results do not depend on a
library version: AUC = Mann-Whitney U / (n_pos * n_neg), with average ranks for tied scores."""

from __future__ import annotations

import numpy as np

from .io import InputError


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of x; tied values get the mean of the ranks they span."""
    n = x.shape[0]
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    boundaries = np.flatnonzero(xs[1:] != xs[:-1]) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [n]))
    avg = (starts + 1 + ends) / 2.0  # ranks starts+1 .. ends
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve of `scores` for binary `labels` (1 = positive, 0 = negative).

    Ties between a positive and a negative count 1/2 (identical to sklearn's roc_auc_score).
    Raises InputError for mismatched lengths, labels other than 0/1, non-finite scores, or when only
    one class is present (AUC undefined).
    """
    y = np.asarray(labels).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape[0] != s.shape[0]:
        raise InputError(f"roc_auc: {y.shape[0]} labels but {s.shape[0]} scores")
    if y.size and not np.isin(y, (0, 1)).all():
        bad = np.unique(y[~np.isin(y, (0, 1))])[:5]
        raise InputError(f"roc_auc: labels must be 0 or 1, found {bad.tolist()}")
    if not np.isfinite(s).all():
        raise InputError(f"roc_auc: {int((~np.isfinite(s)).sum())} scores are NaN or infinite")
    pos = y == 1
    n_pos = int(pos.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise InputError(
            f"roc_auc: AUC needs both classes, got {n_pos} positive and {n_neg} negative labels")
    ranks = _average_ranks(s)
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
