"""Paired statistics of the AUC table, per-run AUC confidence intervals, and paper-style tables.

Conventions
-----------
Pairing. Replicate r of every experiment trains on the same real subset, so an experiment is compared
with its baseline (``Experiment.baselines[application]``: ``1:0`` for augmentation, the ``1/x:0`` of its
group for anonymization) replicate by replicate, per application and test set. Replicates present on
only one side are dropped and counted (``n_unpaired``). The baseline's AUCs are looked up by experiment
id and test set in any application of the table (an AUC does not depend on the figure it is shown in).

Differences. d_r = AUC(experiment, r) - AUC(baseline, r); ``mean_diff`` = mean of d_r.

Confidence interval (``ci_low``/``ci_high``): the exact distribution-free interval of the location shift
that inverts the signed-rank test (Hodges-Lehmann; Hollander & Wolfe, ch. 3). With all n differences
(zeros included) the M = n(n+1)/2 Walsh averages (d_i + d_j)/2, i <= j, are sorted A_(1) <= ... <= A_(M);
``hl_estimate`` is their median. The interval is [A_(k), A_(M+1-k)], whose coverage for continuous
differences symmetric about the shift is 1 - 2 P(W+ <= k - 1) under the untied null distribution of W+
(ranks 1..n); k is the largest with that coverage >= 1 - alpha (``ci_method`` 'exact'; for n > 25, as
the test, k - 1 = floor(n(n+1)/4 - z sigma) from the normal approximation, 'normal'). ``ci_coverage`` is
the achieved coverage 1 - 2 P(W+ <= k - 1), exact, never the nominal ``ci_level``. When no k reaches
1 - alpha (alpha = 0.05: n <= 5) the widest interval [A_(1), A_(M)] = [min d, max d] is reported with its
coverage 1 - 2 / 2^n (75% for n = 3, 87.5% for n = 4, 93.75% for n = 5) and ``ci_method``
'exact-widest'; the tables say so beside the interval. n = 0: NaN, ``ci_method`` ''.
Agreement with the test: by Tukey's identity W+(theta) = #{i <= j: A_ij > theta} (+ 1/2 per Walsh
average equal to theta), so, with no zero and no tied |d|, 0 lies outside [ci_low, ci_high] iff the
exact two-sided p_value <= 1 - ci_coverage, i.e. iff p_value <= alpha whenever the interval reaches
1 - alpha (the exact p only takes the values 2 P(W+ <= c)). With zeros or tied |d| the test uses the
'wilcox' convention and the tie-corrected null (below) while the interval keeps all n and the untied
distribution, so the two can differ by one step of the discrete distribution. The interval is per
comparison: it matches ``p_value``, not the Holm-adjusted ``p_adjusted``.

Secondary intervals in stats.csv (not in the tables): ``t_low``/``t_high``, the paired t interval
mean_diff +- t_{n-1, 1-alpha/2} sd(d) / sqrt(n) (n >= 2; assumes normal differences);
``boot_low``/``boot_high``, a percentile bootstrap of the mean of d (n_boot resamples, generator seeded
from (seed, application, test set, experiment)). The percentile bootstrap undercovers badly for few
pairs (with 3 pairs it takes at most 10 distinct means) and is kept only for comparison.

Wilcoxon signed-rank test (two-sided), 'wilcox' convention: zero differences are dropped, n = number
of non-zero d; ranks of |d| with mid-ranks for ties; W+ = sum of ranks of positive d. Reported
``statistic`` = min(W+, W-) (as scipy.stats.wilcoxon reports it for two-sided tests).
- n <= 25 (``EXACT_MAX_N``): exact null distribution of W+ under random signs, by dynamic programming
  over the doubled (integer) ranks, so ties are handled exactly: p = min(1, 2 min(P(W+ <= w), P(W+ >= w))).
  Without ties this equals scipy's method='exact'; with ties it equals scipy's permutation test.
- n > 25: normal approximation without continuity correction: z = (W+ - n(n+1)/4) / sigma,
  sigma^2 = n(n+1)(2n+1)/24 - sum_t (t^3 - t)/48 over tie groups of size t; p = 2 (1 - Phi(|z|)).
- n = 0 (all differences zero): statistic 0, p = 1.

Holm. Within one figure (application x test set), over the experiments compared with a baseline
(an experiment that is its own baseline is not tested): sort the m p-values, p_adj(i) =
max_{j<=i} min(1, (m - j + 1) p_(j)). ``significant`` = p_adjusted < alpha; ``direction`` = 'better'
('worse') when significant and mean_diff > 0 (< 0), else ''.

Per-run AUC CI (``auc_ci``): DeLong variance by the midrank algorithm of Sun & Xu (2014), O(n log n);
the interval is built on the logit scale (default; stays inside [0, 1]) or plainly (clipped to [0, 1]).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .io import InputError, seed_from

EXACT_MAX_N = 25

STATS_COLUMNS = [
    "application", "test_set", "experiment", "label", "group", "baseline", "baseline_label", "n_pairs",
    "mean_auc", "sd_auc", "baseline_mean_auc", "mean_diff", "ci_low", "ci_high", "statistic", "p_value",
    "p_adjusted", "significant", "direction", "n_unpaired", "n_replicates", "test_method", "ci_level",
    "ci_coverage", "ci_method", "hl_estimate", "t_low", "t_high", "boot_low", "boot_high",
]


# --------------------------------------------------------------------------------------------- ranks
def midranks(x) -> np.ndarray:
    """1-based ranks of x, ties get the mean of the ranks they span (float64)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = len(x)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    cut = np.flatnonzero(xs[1:] != xs[:-1]) + 1
    starts = np.concatenate(([0], cut))
    ends = np.concatenate((cut, [n]))
    out = np.empty(n, dtype=np.float64)
    out[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return out


# --------------------------------------------------------------------------------------------- tests
def signed_rank_null(ranks) -> np.ndarray:
    """Exact null distribution of W+ for the given (mid-)ranks: array P where P[k] = Pr(W+ = k / 2).

    Each rank carries a + or - sign with probability 1/2 independently; W+ = sum of the + ranks. Ranks
    are doubled to integers and the count of sign patterns per sum is built by dynamic programming
    (counts fit exactly in float64 up to n = 52)."""
    r2 = np.rint(2.0 * np.asarray(ranks, dtype=np.float64)).astype(np.int64)
    total = int(r2.sum())
    counts = np.zeros(total + 1, dtype=np.float64)
    counts[0] = 1.0
    for r in r2:
        if r > 0:
            counts[r:] = counts[r:] + counts[: total + 1 - r]  # right side is a copy: old counts
        else:
            counts *= 2.0
    return counts / 2.0 ** len(r2)


def wilcoxon_signed_rank(d, exact_max_n: int = EXACT_MAX_N) -> dict:
    """Two-sided Wilcoxon signed-rank test of paired differences d (conventions in the module doc).

    Returns {statistic (min(W+, W-)), w_plus, n (non-zero differences), n_zero, p_value,
    method ('exact' | 'normal' | 'none'), z (normal method only, else nan)}."""
    d = np.asarray(d, dtype=np.float64).ravel()
    if not np.isfinite(d).all():
        raise InputError("wilcoxon_signed_rank: differences contain NaN or infinite values")
    nz = d[d != 0]
    n = len(nz)
    out = {"n": n, "n_zero": int(len(d) - n), "z": float("nan")}
    if n == 0:
        return {**out, "statistic": 0.0, "w_plus": 0.0, "p_value": 1.0, "method": "none"}
    ranks = midranks(np.abs(nz))
    w_plus = float(ranks[nz > 0].sum())
    w_minus = float(ranks[nz < 0].sum())
    out.update(statistic=min(w_plus, w_minus), w_plus=w_plus)
    if n <= exact_max_n:
        pmf = signed_rank_null(ranks)
        k = round(2.0 * w_plus)
        lower = float(pmf[: k + 1].sum())
        upper = float(pmf[k:].sum())
        return {**out, "p_value": min(1.0, 2.0 * min(lower, upper)), "method": "exact"}
    _, tie_sizes = np.unique(ranks, return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24.0 - float((tie_sizes ** 3 - tie_sizes).sum()) / 48.0
    z = (w_plus - n * (n + 1) / 4.0) / math.sqrt(var)
    return {**out, "z": z, "p_value": min(1.0, math.erfc(abs(z) / math.sqrt(2.0))), "method": "normal"}


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries are kept as NaN and not counted in m."""
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="mergesort")]
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adj)
    return out


def bootstrap_mean_ci(d, n_boot: int = 10000, alpha: float = 0.05, rng=None) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of d (resampling its elements with replacement)."""
    d = np.asarray(d, dtype=np.float64).ravel()
    if len(d) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(rng)
    means = d[rng.integers(0, len(d), size=(int(n_boot), len(d)))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def walsh_averages(d) -> np.ndarray:
    """The n(n+1)/2 Walsh averages (d_i + d_j) / 2, i <= j, sorted."""
    d = np.asarray(d, dtype=np.float64).ravel()
    i, j = np.triu_indices(len(d))
    return np.sort((d[i] + d[j]) / 2.0)


def signed_rank_interval(d, alpha: float = 0.05, exact_max_n: int = EXACT_MAX_N) -> dict:
    """Hodges-Lehmann estimate of the shift of d and the confidence interval that inverts the
    signed-rank test (conventions in the module doc).

    Returns {estimate, low, high, coverage (achieved, 1 - 2 P(W+ <= k - 1)), level (nominal 1 - alpha),
    k (the interval is the k-th smallest .. k-th largest Walsh average), n, method ('exact' |
    'exact-widest' (no interval reaches 1 - alpha; the widest is given) | 'normal' | '' (n = 0))}."""
    if not 0 < alpha < 1:
        raise InputError(f"signed_rank_interval: alpha must be in (0, 1), got {alpha}")
    d = np.asarray(d, dtype=np.float64).ravel()
    if not np.isfinite(d).all():
        raise InputError("signed_rank_interval: differences contain NaN or infinite values")
    n = len(d)
    out = {"n": n, "level": 1.0 - alpha}
    if n == 0:
        nan = float("nan")
        return {**out, "estimate": nan, "low": nan, "high": nan, "coverage": nan, "k": 0, "method": ""}
    walsh = walsh_averages(d)
    m = len(walsh)
    # cdf[c] = P(W+ <= c) for untied ranks 1..n (signed_rank_null works on doubled ranks: even entries)
    cdf = np.cumsum(signed_rank_null(np.arange(1, n + 1))[::2])
    if n <= exact_max_n:
        ok = np.flatnonzero(2.0 * cdf <= alpha * (1.0 + 1e-12))  # c = k - 1 with coverage >= 1 - alpha
        if len(ok):
            k, method = int(ok[-1]) + 1, "exact"
        else:
            k, method = 1, "exact-widest"
    else:
        mu = n * (n + 1) / 4.0
        sigma = math.sqrt(n * (n + 1) * (2 * n + 1) / 24.0)
        k, method = max(1, math.floor(mu - _norm_ppf(1.0 - alpha / 2.0) * sigma) + 1), "normal"
    return {**out, "estimate": float(np.median(walsh)), "low": float(walsh[k - 1]),
            "high": float(walsh[m - k]), "coverage": float(max(0.0, 1.0 - 2.0 * cdf[k - 1])), "k": k,
            "method": method}


def t_interval(d, alpha: float = 0.05) -> tuple[float, float]:
    """Paired t interval mean(d) +- t_{n-1, 1 - alpha/2} sd(d) / sqrt(n); NaN for n < 2."""
    d = np.asarray(d, dtype=np.float64).ravel()
    if len(d) < 2:
        return float("nan"), float("nan")
    from scipy.stats import t

    half = float(t.ppf(1.0 - alpha / 2.0, len(d) - 1)) * float(d.std(ddof=1)) / math.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


# --------------------------------------------------------------------------------------------- AUC table
def _get(obj, name, default=None):
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _design(experiments) -> dict[str, dict]:
    """id -> {label, baselines {app: id}, positions {app: int}, groups {app: str}, rank}."""
    items = experiments.items() if isinstance(experiments, Mapping) else \
        ((_get(e, "id"), e) for e in experiments)
    table: dict[str, dict] = {}
    for key, exp in items:
        eid = str(_get(exp, "id") or key)
        if not eid or eid == "None":
            raise InputError(f"experiments: entry {key!r} has no 'id'")
        baselines = dict(_get(exp, "baselines") or {})
        if not baselines:
            apps = _get(exp, "applications") or ([_get(exp, "application")] if _get(exp, "application")
                                                  else [])
            base = _get(exp, "baseline_id") or _get(exp, "baseline")
            if base:
                baselines = {str(a): base for a in apps}
        table[eid] = {
            "label": str(_get(exp, "label") or eid),
            "baselines": {str(a): str(b) for a, b in baselines.items()},
            "positions": dict(_get(exp, "positions") or {}),
            "groups": dict(_get(exp, "groups") or {}),
            "rank": len(table),
        }
    return table


def _validate_auc(auc: pd.DataFrame, source: str) -> pd.DataFrame:
    need = ["experiment", "application", "replicate", "test_set", "auc"]
    if not isinstance(auc, pd.DataFrame):
        raise InputError(f"{source}: expected a DataFrame, got {type(auc).__name__}")
    missing = [c for c in need if c not in auc.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing} (columns: {list(auc.columns)})")
    df = auc.copy()
    for c in ("experiment", "application", "test_set"):
        df[c] = df[c].astype(str)
    values = pd.to_numeric(df["auc"], errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=np.float64))
    if bad.any():
        raise InputError(f"{source}: column 'auc' has {int(bad.sum())} missing or non-numeric value(s), "
                         f"first at row {int(np.flatnonzero(bad)[0])}")
    df["auc"] = values.astype(np.float64)
    reps = pd.to_numeric(df["replicate"], errors="coerce")
    if reps.isna().any() or (reps != np.round(reps)).any():
        raise InputError(f"{source}: column 'replicate' must hold integers, found "
                         f"{df.loc[reps.isna() | (reps != np.round(reps)), 'replicate'].unique()[:5].tolist()}")
    df["replicate"] = reps.astype(np.int64)
    dup = df.duplicated(["experiment", "application", "replicate", "test_set"], keep=False)
    if dup.any():
        r = df[dup].iloc[0]
        raise InputError(f"{source}: duplicate rows for experiment {r['experiment']}, application "
                         f"{r['application']}, replicate {r['replicate']}, test set {r['test_set']}")
    return df


def _auc_by_replicate(df: pd.DataFrame, exp_id: str, test_set: str, source: str) -> pd.Series:
    """replicate -> AUC of one experiment on one test set (over all applications; must agree)."""
    rows = df[(df["experiment"] == exp_id) & (df["test_set"] == test_set)]
    g = rows.groupby("replicate")["auc"]
    spread = (g.max() - g.min())
    if (spread > 1e-12).any():
        r = int(spread.idxmax())
        raise InputError(f"{source}: experiment {exp_id}, test set {test_set}, replicate {r} has different "
                         f"AUC values in different applications")
    return g.first().sort_index()


def paired_stats(auc: pd.DataFrame, experiments, n_boot: int = 10000, seed: int = 0, alpha: float = 0.05,
                 source: str = "AUC table") -> pd.DataFrame:
    """Paired comparison of every experiment with its baseline, per application and test set.

    auc: the tidy AUC table (columns experiment, label, group, application, replicate, test_set, auc).
    experiments: {id: Experiment | Experiment.to_dict()} (or an iterable of them); each experiment of the
    table needs ``baselines[application]``. `source` names the table in error messages (e.g. its path).

    Returns one row per (application, test set, experiment) with the columns of ``STATS_COLUMNS``,
    ordered by application and test set (first appearance) and experiment (design order: positions in
    the application, else the order of `experiments`). An experiment that is its own baseline gets a
    row with its mean/sd and empty comparison fields (NaN p-values, significant False, direction '').
    Conventions (pairing, intervals, Wilcoxon, Holm) are in the module docstring.
    """
    if not 0 < alpha < 1:
        raise InputError(f"paired_stats: alpha must be in (0, 1), got {alpha}")
    if int(n_boot) < 1:
        raise InputError(f"paired_stats: n_boot must be >= 1, got {n_boot}")
    df = _validate_auc(auc, source)
    design = _design(experiments)
    unknown = sorted(set(df["experiment"]) - set(design))
    if unknown:
        raise InputError(f"{source}: experiment(s) {unknown[:5]} are not among the declared experiments")
    rows = []
    for app in dict.fromkeys(df["application"]):
        app_df = df[df["application"] == app]
        for test_set in dict.fromkeys(app_df["test_set"]):
            sub = app_df[app_df["test_set"] == test_set]
            ids = list(dict.fromkeys(sub["experiment"]))
            ids.sort(key=lambda e: (design[e]["positions"].get(app, math.inf), design[e]["rank"]))
            fig_rows = []
            for eid in ids:
                info = design[eid]
                base = info["baselines"].get(app)
                if base is None:
                    raise InputError(f"{source}: experiment {eid} has no baseline for application '{app}' "
                                     f"(its baselines: {info['baselines']})")
                e_rows = sub[sub["experiment"] == eid].sort_values("replicate")
                e_auc = pd.Series(e_rows["auc"].to_numpy(), index=e_rows["replicate"].to_numpy())
                group = str(e_rows["group"].iloc[0]) if "group" in e_rows else str(info["groups"].get(app, ""))
                row = {
                    "application": app, "test_set": test_set, "experiment": eid, "label": info["label"],
                    "group": group, "baseline": base,
                    "baseline_label": design[base]["label"] if base in design else base,
                    "n_replicates": len(e_auc), "mean_auc": float(e_auc.mean()),
                    "sd_auc": float(e_auc.std(ddof=1)) if len(e_auc) > 1 else float("nan"),
                    "ci_level": 1.0 - alpha, "significant": False, "direction": "",
                    "statistic": float("nan"), "p_value": float("nan"), "test_method": "",
                    "mean_diff": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
                    "ci_coverage": float("nan"), "ci_method": "", "hl_estimate": float("nan"),
                    "t_low": float("nan"), "t_high": float("nan"), "boot_low": float("nan"),
                    "boot_high": float("nan"),
                }
                if base == eid:
                    row.update(n_pairs=len(e_auc), n_unpaired=0, baseline_mean_auc=row["mean_auc"])
                    fig_rows.append(row)
                    continue
                b_auc = _auc_by_replicate(df, base, test_set, source)
                if b_auc.empty:
                    raise InputError(f"{source}: baseline {base} of experiment {eid} has no AUC values for "
                                     f"test set '{test_set}'")
                common = e_auc.index.intersection(b_auc.index).sort_values()
                d = e_auc.loc[common].to_numpy() - b_auc.loc[common].to_numpy()
                row.update(n_pairs=len(common),
                           n_unpaired=len(e_auc.index.symmetric_difference(b_auc.index)),
                           baseline_mean_auc=float(b_auc.mean()))
                if len(d):
                    rng = np.random.default_rng(seed_from(seed, "paired_stats", app, test_set, eid))
                    b_lo, b_hi = bootstrap_mean_ci(d, n_boot, alpha, rng)
                    t_lo, t_hi = t_interval(d, alpha)
                    ci = signed_rank_interval(d, alpha)
                    t = wilcoxon_signed_rank(d)
                    row.update(mean_diff=float(d.mean()), ci_low=ci["low"], ci_high=ci["high"],
                               ci_coverage=ci["coverage"], ci_method=ci["method"], hl_estimate=ci["estimate"],
                               t_low=t_lo, t_high=t_hi, boot_low=b_lo, boot_high=b_hi,
                               statistic=t["statistic"], p_value=t["p_value"], test_method=t["method"])
                fig_rows.append(row)
            adj = holm([r["p_value"] if r["baseline"] != r["experiment"] else np.nan for r in fig_rows])
            for r, pa in zip(fig_rows, adj):
                r["p_adjusted"] = float(pa)
                r["significant"] = bool(pa < alpha)  # NaN compares False
                if r["significant"] and r["mean_diff"] != 0:
                    r["direction"] = "better" if r["mean_diff"] > 0 else "worse"
            rows += fig_rows
    out = pd.DataFrame(rows, columns=STATS_COLUMNS)
    return out.astype({"n_pairs": np.int64, "n_unpaired": np.int64, "n_replicates": np.int64,
                       "significant": bool})


# --------------------------------------------------------------------------------------------- DeLong
def delong_auc_variance(labels, scores) -> tuple[float, float]:
    """AUC and its DeLong variance, by the midrank algorithm of Sun & Xu (2014).

    With m positives X and n negatives Y: T_z = midranks of all scores, T_x / T_y = midranks within X / Y.
    AUC = (sum T_z[X] - m(m+1)/2) / (m n); structural components V10_i = (T_z[X_i] - T_x[i]) / n,
    V01_j = 1 - (T_z[Y_j] - T_y[j]) / m; Var = s^2(V10)/m + s^2(V01)/n (sample variances, ddof 1).
    Ties between a positive and a negative count 1/2 (same AUC as ganaug.metrics.roc_auc).
    """
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if len(y) != len(s):
        raise InputError(f"auc_ci: {len(y)} labels but {len(s)} scores")
    if not np.isin(y, (0, 1)).all():
        raise InputError(f"auc_ci: labels must be 0 or 1, found {np.unique(y[~np.isin(y, (0, 1))])[:5].tolist()}")
    if not np.isfinite(s).all():
        raise InputError(f"auc_ci: {int((~np.isfinite(s)).sum())} scores are NaN or infinite")
    x, yy = s[y == 1], s[y == 0]
    m, n = len(x), len(yy)
    if m < 2 or n < 2:
        raise InputError(f"auc_ci: DeLong variance needs >= 2 positives and >= 2 negatives, got {m} and {n}")
    tz = midranks(np.concatenate([x, yy]))
    tx, ty = midranks(x), midranks(yy)
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:m] - tx) / n
    v01 = 1.0 - (tz[m:] - ty) / m
    return float(auc), float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)


def _norm_ppf(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def auc_ci(labels, scores, alpha: float = 0.05, method: str = "logit") -> tuple[float, float, float, float]:
    """(auc, low, high, se): AUC with a (1 - alpha) confidence interval from the DeLong standard error.

    method 'logit' (default): logit(AUC) +- z se / (AUC (1 - AUC)), mapped back (inside (0, 1)).
    method 'normal': AUC +- z se, clipped to [0, 1]. se = 0 (e.g. AUC 0 or 1) gives low = high = AUC.
    """
    if method not in ("logit", "normal"):
        raise InputError(f"auc_ci: method must be 'logit' or 'normal', got {method!r}")
    if not 0 < alpha < 1:
        raise InputError(f"auc_ci: alpha must be in (0, 1), got {alpha}")
    auc, var = delong_auc_variance(labels, scores)
    se = math.sqrt(max(var, 0.0))
    z = _norm_ppf(1.0 - alpha / 2.0)
    if se == 0.0 or auc in (0.0, 1.0):
        return auc, auc, auc, se
    if method == "normal":
        return auc, max(0.0, auc - z * se), min(1.0, auc + z * se), se
    lg = math.log(auc / (1.0 - auc))
    half = z * se / (auc * (1.0 - auc))
    expit = lambda v: 1.0 / (1.0 + math.exp(-v))
    return auc, expit(lg - half), expit(lg + half), se


# --------------------------------------------------------------------------------------------- tables
def _fmt_p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return ""
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}"


def ci_note(coverage: float, level: float, n: int) -> str:
    """'' when the interval reaches its nominal level; else e.g. '(75% CI: n=3 too small for 95%)'."""
    if coverage is None or not np.isfinite(coverage) or coverage >= level - 1e-9:
        return ""
    return f"({coverage * 100:.3g}% CI: n={int(n)} too small for {level * 100:g}%)"


def summary_table(stats_df: pd.DataFrame, application: str, test_set: str, digits: int = 3,
                  synthetic: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Paper layout for one figure: one row per experiment (design order, paper labels), string columns
    Experiment, [Baseline, when the figure compares with more than one baseline], n, AUC (mean ± sd
    over replicates), ΔAUC (mean paired difference to the baseline), '95% CI (signed-rank)' (the interval
    that inverts the Wilcoxon test, ``ci_low``/``ci_high``; when it cannot reach the nominal level, e.g.
    3 pairs, the widest one with a note such as '(75% CI: n=3 too small for 95%)'), p (Holm) (adjusted p,
    '*' when significant). A baseline row shows '(baseline)' in the ΔAUC column. synthetic: optional
    experiment id -> the synthetic images its train set holds (``synthetic_counts``), shown as column
    'Synthetic (benign + melanoma)' after the experiment."""
    need = ["application", "test_set", "experiment", "label", "baseline", "baseline_label", "n_pairs",
            "mean_auc", "sd_auc", "mean_diff", "ci_low", "ci_high", "p_adjusted", "significant"]
    missing = [c for c in need if c not in stats_df.columns]
    if missing:
        raise InputError(f"summary_table: stats table is missing column(s) {missing}")
    sub = stats_df[(stats_df["application"] == application) & (stats_df["test_set"] == test_set)]
    if sub.empty:
        raise InputError(f"summary_table: no rows for application '{application}' and test set '{test_set}'")
    level = float(sub["ci_level"].iloc[0]) if "ci_level" in sub else 0.95
    ccol = f"{level * 100:g}% CI (signed-rank)"
    compared = sub[sub["baseline"] != sub["experiment"]]
    show_base = compared["baseline"].nunique() > 1
    f = f"{{:.{digits}f}}"
    sf = f"{{:+.{digits}f}}"
    rows = []
    for _, r in sub.iterrows():
        sd = f" ± {f.format(r['sd_auc'])}" if np.isfinite(r["sd_auc"]) else ""
        own = r["baseline"] == r["experiment"]
        diff = ci = ""
        if own:
            diff = "(baseline)"
        elif np.isfinite(r["mean_diff"]):
            diff = sf.format(r["mean_diff"])
            ci = f"[{sf.format(r['ci_low'])}, {sf.format(r['ci_high'])}]"
            note = ci_note(r.get("ci_coverage", np.nan), level, r["n_pairs"])
            ci += f" {note}" if note else ""
        p = "" if own else _fmt_p(r["p_adjusted"]) + ("*" if r["significant"] else "")
        row = {"Experiment": r["label"]}
        if synthetic is not None:
            row["Synthetic (benign + melanoma)"] = synthetic.get(r["experiment"], "")
        if show_base:
            row["Baseline"] = "" if own else r["baseline_label"]
        n = int(r["n_replicates"]) if "n_replicates" in r else int(r["n_pairs"])
        row.update({"n": str(n), "AUC": f.format(r["mean_auc"]) + sd, "ΔAUC": diff, ccol: ci, "p (Holm)": p})
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (first column left-aligned, the others right-aligned)."""
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")

    cols = [cell(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(cols) - 1)) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


_LATEX_ESCAPE = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "±": r"$\pm$", "Δ": r"$\Delta$", "<": r"$<$", ">": r"$>$"}


def latex_escape(text) -> str:
    return "".join(_LATEX_ESCAPE.get(ch, ch) for ch in str(text))


def to_latex(df: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs ``tabular`` (needs \\usepackage{booktabs}); wrapped in a ``table`` float when a caption
    or label is given. Special characters are escaped; ± and Δ become $\\pm$ and $\\Delta$."""
    spec = "l" + "r" * (len(df.columns) - 1)
    body = [r"\begin{tabular}{" + spec + "}", r"\toprule",
            " & ".join(latex_escape(c) for c in df.columns) + r" \\", r"\midrule"]
    for row in df.itertuples(index=False):
        body.append(" & ".join(latex_escape(v) for v in row) + r" \\")
    body += [r"\bottomrule", r"\end{tabular}"]
    if caption is None and label is None:
        return "\n".join(body) + "\n"
    head = [r"\begin{table}[t]", r"\centering"]
    if caption is not None:
        head.append(r"\caption{" + latex_escape(caption) + "}")
    if label is not None:
        head.append(r"\label{" + str(label) + "}")
    return "\n".join(head + body + [r"\end{table}"]) + "\n"


def synthetic_counts(design_csv) -> dict[str, str]:
    """experiment id -> '5,842 + 1,560' (synthetic benign + melanoma of its train set) from the design table
    (ganaug.trainsets.design_table), with what the ratio asked for where it got fewer, e.g. '2,074 + 520 of
    5,842 + 1,560' (a mask-to-image GAN with fewer label maps than asked)."""
    design = pd.read_csv(design_csv)
    need = ["experiment", "synthetic_benign", "synthetic_melanoma", "asked_synthetic_benign",
            "asked_synthetic_melanoma"]
    missing = [c for c in need if c not in design.columns]
    if missing:
        raise InputError(f"{design_csv}: missing column(s) {missing}")
    out = {}
    for r in design.drop_duplicates("experiment").itertuples(index=False):
        got = f"{r.synthetic_benign:,} + {r.synthetic_melanoma:,}"
        asked = f"{r.asked_synthetic_benign:,} + {r.asked_synthetic_melanoma:,}"
        out[r.experiment] = got if got == asked else f"{got} of {asked}"
    return out


def write_stats(auc_csv, experiments, out_csv, tables_dir, n_boot: int = 10000, seed: int = 0,
                alpha: float = 0.05, design_csv=None) -> pd.DataFrame:
    """results/stats.csv from the AUC table, and one paper-style table per figure (application x test
    set) in tables_dir as {application}_{test_set}.csv / .md / .tex; with the design table, the tables
    say how many synthetic images each experiment's train set holds."""
    from .io import write_csv, write_text

    auc_csv = Path(auc_csv)
    if not auc_csv.exists():
        raise InputError(f"{auc_csv}: AUC table not found")
    stats = paired_stats(pd.read_csv(auc_csv), experiments, n_boot=n_boot, seed=seed, alpha=alpha,
                         source=str(auc_csv))
    write_csv(out_csv, stats)
    tables_dir = Path(tables_dir)
    synthetic = None if design_csv is None else synthetic_counts(design_csv)
    for (app, test_set), _ in stats.groupby(["application", "test_set"], sort=False):
        table = summary_table(stats, app, test_set, synthetic=synthetic)
        stem = tables_dir / f"{app}_{test_set}"
        write_csv(stem.with_suffix(".csv"), table)
        write_text(stem.with_suffix(".md"), f"**{app}, test set {test_set}**\n\n" + to_markdown(table))
        write_text(stem.with_suffix(".tex"), to_latex(table, caption=f"{app.capitalize()}: AUC on {test_set}",
                                                      label=f"tab:{app}-{test_set}"))
    return stats


__all__ = [
    "EXACT_MAX_N", "STATS_COLUMNS", "auc_ci", "bootstrap_mean_ci", "ci_note", "delong_auc_variance", "holm",
    "latex_escape", "midranks", "paired_stats", "signed_rank_interval", "signed_rank_null", "summary_table", "synthetic_counts",
    "t_interval", "to_latex", "to_markdown", "walsh_averages", "wilcoxon_signed_rank", "write_stats",
]
