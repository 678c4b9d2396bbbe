import itertools
import zlib

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from ganaug import stats
from ganaug.io import InputError
from ganaug.metrics import roc_auc


# ------------------------------------------------------------------------------------------ Wilcoxon
def _brute_force_p(d):
    """Two-sided p over all 2^n sign patterns of the non-zero differences (mid-ranks)."""
    nz = d[d != 0]
    r = stats.midranks(np.abs(nz))
    w = r[nz > 0].sum()
    sums = np.array([sum(ri for ri, s in zip(r, signs) if s) for signs in
                     itertools.product((0, 1), repeat=len(r))])
    lo = np.mean(sums <= w + 1e-9)
    hi = np.mean(sums >= w - 1e-9)
    return min(1.0, 2 * min(lo, hi))


@pytest.mark.parametrize("n", [1, 3, 5, 8, 12, 20, 25])
def test_wilcoxon_exact_matches_scipy(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        d = rng.normal(0.01, 0.02, n)
        res = stats.wilcoxon_signed_rank(d)
        ref = scipy.stats.wilcoxon(d, method="exact")
        assert res["method"] == "exact"
        assert res["statistic"] == pytest.approx(ref.statistic)
        assert res["p_value"] == pytest.approx(ref.pvalue, rel=1e-10, abs=1e-14)


def test_wilcoxon_ties_and_zeros_exact():
    # AUC differences rounded to 2 decimals: ties and zeros
    rng = np.random.default_rng(3)
    for n in (4, 7, 11):
        for _ in range(3):
            d = np.round(rng.normal(0.01, 0.02, n), 2)
            res = stats.wilcoxon_signed_rank(d)
            assert res["p_value"] == pytest.approx(_brute_force_p(d), abs=1e-12)
            assert res["n_zero"] == int((d == 0).sum())
            if (d != 0).any():
                # scipy: permutation test over all sign patterns (n <= 13), zeros dropped ('wilcox')
                ref = scipy.stats.wilcoxon(d, method="auto")
                assert res["p_value"] == pytest.approx(ref.pvalue, abs=1e-12)
                assert res["statistic"] == pytest.approx(ref.statistic)


def test_wilcoxon_hand_case():
    # d = 1, 2, 3 all positive: W+ = 6; P(W+ = 6) = 1/8 -> two-sided p = 1/4
    res = stats.wilcoxon_signed_rank([0.01, 0.02, 0.03])
    assert res["statistic"] == 0 and res["w_plus"] == 6
    assert res["p_value"] == pytest.approx(0.25)
    # ties: |d| = 1, 1, 2 -> ranks 1.5, 1.5, 3, signs + - +: W+ = 4.5; sums over 8 patterns:
    # 0, 1.5, 1.5, 3, 3, 4.5, 4.5, 6 -> P(W+ >= 4.5) = 3/8 -> p = 3/4
    res = stats.wilcoxon_signed_rank([1.0, -1.0, 2.0])
    assert res["p_value"] == pytest.approx(0.75)
    allzero = stats.wilcoxon_signed_rank([0.0, 0.0])
    assert allzero["p_value"] == 1.0 and allzero["method"] == "none"


def test_wilcoxon_normal_approximation_matches_scipy():
    rng = np.random.default_rng(7)
    for n in (30, 40, 80):
        d = np.round(rng.normal(0.005, 0.02, n), 3)  # ties and some zeros
        res = stats.wilcoxon_signed_rank(d)
        ref = scipy.stats.wilcoxon(d, method="approx", correction=False, zero_method="wilcox")
        assert res["method"] == "normal"
        assert res["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
        assert res["statistic"] == pytest.approx(ref.statistic)
    # near the switch, exact and normal agree roughly
    d = rng.normal(0.005, 0.02, 25)
    exact = stats.wilcoxon_signed_rank(d)["p_value"]
    approx = stats.wilcoxon_signed_rank(d, exact_max_n=0)["p_value"]
    assert abs(exact - approx) < 0.02


def test_signed_rank_null_sums_to_one():
    pmf = stats.signed_rank_null(stats.midranks([1, 1, 2, 3, 3, 3]))
    assert pmf.sum() == pytest.approx(1.0)
    assert np.allclose(pmf, pmf[::-1])  # symmetric


# ------------------------------------------------------------------------------------------ HL interval
def _brute_force_interval(d, alpha):
    """Reference by test inversion, not from Walsh-average order statistics: for theta between
    consecutive Walsh averages (where |d - theta| has no ties and no zeros), the exact two-sided p of
    H0: shift = theta from all 2^n sign vectors; the confidence set is {theta: p(theta) > a*}, a* the
    largest achievable p <= alpha (else the smallest achievable p); coverage = 1 - P(p <= a*) by the
    same enumeration. Returns (low, high, coverage) with the closure of the accepted set."""
    n = len(d)
    signs = np.array(list(itertools.product((0, 1), repeat=n)), dtype=float)  # 2^n x n
    ranks = np.arange(1, n + 1, dtype=float)
    null = signs @ ranks  # W+ under each sign vector, untied ranks
    def p_of(w):
        return min(1.0, 2 * min(np.mean(null <= w + 1e-9), np.mean(null >= w - 1e-9)))
    achievable = sorted({p_of(w) for w in null})
    below = [a for a in achievable if a <= alpha + 1e-12]
    a_star = below[-1] if below else achievable[0]
    coverage = 1 - np.mean([p_of(w) <= a_star + 1e-12 for w in null])
    walsh = sorted({(d[i] + d[j]) / 2 for i in range(n) for j in range(i, n)})
    grid = [walsh[0] - 1] + [(a + b) / 2 for a, b in zip(walsh[:-1], walsh[1:])] + [walsh[-1] + 1]
    accepted = []
    for g, theta in enumerate(grid):
        x = d - theta
        r = stats.midranks(np.abs(x))
        if p_of(r[x > 0].sum()) > a_star + 1e-12:
            accepted.append(g)
    assert accepted == list(range(accepted[0], accepted[-1] + 1))  # an interval
    # gap g lies between walsh[g-1] and walsh[g]: the closure runs from walsh[first-1] to walsh[last]
    return walsh[accepted[0] - 1], walsh[accepted[-1]], coverage


def test_signed_rank_interval_hand_cases():
    # n = 3: P(W+ <= 0) = 1/8, 2/8 > 0.05: no interval reaches 95%; the widest, min..max of the Walsh
    # averages (-0.11, -0.095, -0.085, -0.08, -0.07, -0.06), covers 1 - 2/8 = 75%
    ci = stats.signed_rank_interval([-0.08, -0.11, -0.06])
    assert ci["method"] == "exact-widest" and ci["k"] == 1 and ci["coverage"] == pytest.approx(0.75)
    assert (ci["low"], ci["high"]) == pytest.approx((-0.11, -0.06))
    assert ci["estimate"] == pytest.approx((-0.085 - 0.08) / 2)  # median of 6 averages
    assert stats.signed_rank_interval([1.0, 2.0, 3.0, 4.0])["coverage"] == pytest.approx(0.875)
    # n = 5, d = 1..5: Walsh 1 1.5 2 2 2.5 2.5 3 3 3 3.5 3.5 4 4 4.5 5, median 3; 2/32 > 0.05 -> widest,
    # 93.75%; at alpha = 0.1 the same interval is exact (2 P(W+ <= 0) = 0.0625 <= 0.1 < 2 P(W+ <= 1))
    ci = stats.signed_rank_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (ci["low"], ci["high"], ci["estimate"]) == (1.0, 5.0, 3.0)
    assert ci["method"] == "exact-widest" and ci["coverage"] == pytest.approx(0.9375)
    assert stats.signed_rank_interval([1.0, 2.0, 3.0, 4.0, 5.0], alpha=0.1)["method"] == "exact"
    # n = 6, d = -1 2 3 5 7 11: Walsh -1 .5 1 2 2 2.5 3 3 3.5 4 4.5 5 5 5 6 6.5 7 7 8 9 11 (median 4.5).
    # alpha 0.05: P(W+ <= 0) = 1/64, P(W+ <= 1) = 2/64 > .025 -> k = 1: [-1, 11], 62/64 = 96.875%;
    # alpha 0.1: P(W+ <= 2) = 3/64 <= .05 < P(W+ <= 3) = 5/64 -> k = 3: [A_3, A_19] = [1, 8], 1 - 6/64
    d6 = [-1.0, 2.0, 3.0, 5.0, 7.0, 11.0]
    ci = stats.signed_rank_interval(d6)
    assert (ci["low"], ci["high"], ci["estimate"], ci["k"]) == (-1.0, 11.0, 4.5, 1)
    assert ci["method"] == "exact" and ci["coverage"] == pytest.approx(62 / 64)
    ci = stats.signed_rank_interval(d6, alpha=0.1)
    assert (ci["low"], ci["high"], ci["k"]) == (1.0, 8.0, 3) and ci["coverage"] == pytest.approx(58 / 64)
    # the test agrees: W- = 1 -> p = 2 P(W+ <= 1) = 4/64 = 0.0625: > 0.05 (0 inside), <= 0.1 (0 outside)
    assert stats.wilcoxon_signed_rank(d6)["p_value"] == pytest.approx(4 / 64)
    # n = 8: subsets of 1..8 with sum <= 0,1,2,3,4: 1 2 3 5 7 -> c = 3 (5/256 <= .025 < 7/256), k = 4,
    # coverage 1 - 10/256. d = -3 -1 2 4 5 6 8 9: lowest Walsh -3 -2 -1 -.5, highest 9 8.5 8 7.5
    ci = stats.signed_rank_interval([-3.0, -1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 9.0])
    assert (ci["low"], ci["high"], ci["k"]) == (-0.5, 7.5, 4) and ci["coverage"] == pytest.approx(246 / 256)
    assert stats.wilcoxon_signed_rank([-3.0, -1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 9.0])["p_value"] == \
        pytest.approx(14 / 256)  # W- = 1 + 3 = 4, P(W+ <= 4) = 7/256: 0 inside, p > 0.05
    ci = stats.signed_rank_interval([-1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 9.0])  # lowest -1 .5 1 1.5
    assert ci["low"] == 1.5 and stats.wilcoxon_signed_rank([-1.0, 2, 3, 4, 5, 6, 8, 9])["p_value"] < 0.05
    # n = 10: subsets of 1..10 with sum <= 8: 25 of 1024, <= 9: 33 -> k = 9, coverage 1 - 50/1024
    ci = stats.signed_rank_interval(np.arange(1.0, 11.0))
    assert ci["k"] == 9 and ci["coverage"] == pytest.approx(1 - 50 / 1024)
    # n = 1, 0, constant
    one = stats.signed_rank_interval([0.02])
    assert (one["low"], one["high"], one["coverage"], one["method"]) == (0.02, 0.02, 0.0, "exact-widest")
    assert np.isnan(stats.signed_rank_interval([])["low"]) and stats.signed_rank_interval([])["method"] == ""
    assert stats.signed_rank_interval([0.01] * 7)["low"] == pytest.approx(0.01)
    with pytest.raises(InputError, match="NaN"):
        stats.signed_rank_interval([0.1, np.nan])


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7, 9, 11])  # n = 1: empty set, see hand cases
def test_signed_rank_interval_matches_brute_force_inversion(n):
    rng = np.random.default_rng(100 + n)
    for alpha in (0.05, 0.1, 0.3):
        for _ in range(3):
            d = rng.normal(0.01, 0.02, n)
            lo, hi, cov = _brute_force_interval(d, alpha)
            ci = stats.signed_rank_interval(d, alpha)
            assert (ci["low"], ci["high"]) == pytest.approx((lo, hi), abs=1e-15)
            assert ci["coverage"] == pytest.approx(cov, abs=1e-12)
            assert (ci["method"] == "exact-widest") == (cov < 1 - alpha - 1e-12)


def test_signed_rank_interval_agrees_with_test():
    """No zeros, no tied |d|: 0 outside [low, high] iff exact p <= 1 - coverage, and iff p <= alpha when
    the interval reaches its nominal level. Cases straddle 0 so that both outcomes occur."""
    rng = np.random.default_rng(5)
    seen = set()
    for n in range(1, 16):
        for alpha in (0.05, 0.1, 0.2):
            for shift in (-0.02, 0.0, 0.01, 0.03):
                d = rng.normal(shift, 0.02, n)
                ci = stats.signed_rank_interval(d, alpha)
                p = stats.wilcoxon_signed_rank(d)["p_value"]
                excludes = ci["low"] > 0 or ci["high"] < 0
                assert excludes == (p <= 1 - ci["coverage"] + 1e-12), (n, alpha, d)
                if ci["method"] == "exact":
                    assert excludes == (p <= alpha + 1e-12)
                seen.add(excludes)
    assert seen == {True, False}
    # normal approximation (n > 25) uses the same z as the test
    for seed in range(5):
        d = np.random.default_rng(seed).normal(0.004, 0.02, 40)
        ci = stats.signed_rank_interval(d)
        t = stats.wilcoxon_signed_rank(d)
        assert ci["method"] == "normal" and t["method"] == "normal"
        assert (ci["low"] > 0 or ci["high"] < 0) == (t["p_value"] <= 0.05)
        assert 0.945 < ci["coverage"] < 0.96
        # n = 40: mu = 410, sigma = sqrt(40 * 41 * 81 / 24) = 74.398; 410 - 1.95996 sigma = 264.18 -> k = 265
        assert ci["k"] == 265
        w = stats.walsh_averages(d)
        assert (ci["low"], ci["high"]) == (w[264], w[len(w) - 265])


def test_t_interval_matches_scipy():
    d = np.array([0.01, -0.02, 0.03, 0.015, 0.0])
    lo, hi = stats.t_interval(d, 0.05)
    ref = scipy.stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ref.low, ref.high))
    assert np.isnan(stats.t_interval([0.1])[0])


# ------------------------------------------------------------------------------------------ Holm
def test_holm_hand_cases():
    # p = .01, .04, .03, .005 (m = 4): sorted .005 .01 .03 .04 -> 4*.005=.02, 3*.01=.03, 2*.03=.06, .04->.06
    adj = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert np.allclose(adj, [0.03, 0.06, 0.06, 0.02])
    # capped at 1, NaN kept out of m
    adj = stats.holm([0.5, np.nan, 0.4])
    assert np.isnan(adj[1]) and np.allclose(adj[[0, 2]], [0.8, 0.8])
    assert np.allclose(stats.holm([0.9, 0.6]), [1.0, 1.0])
    assert stats.holm([]).shape == (0,)


# ------------------------------------------------------------------------------------------ paired_stats
def _design():
    from ganaug.design import build_experiments

    cfg = {
        "augmentation": [{"ratio": "1:0", "group": "baseline"},
                         {"ratio": "1:1/2", "gan": "stylegan2", "group": "a"},
                         {"ratio": "1:1", "gan": "stylegan2", "group": "a"}],
        "anonymization": [{"ratio": "1/2:0", "group": "half"},
                          {"ratio": "1/2:1/2", "gan": "stylegan2", "group": "half"},
                          {"ratio": "0:1", "gan": "stylegan2", "group": "none"}],
    }
    return build_experiments(cfg)


def _auc_table(exps, effects, n_rep=8, seed=0):
    rng = np.random.default_rng(seed)
    rep_effect = rng.normal(0, 0.02, n_rep)  # shared real subset per replicate
    rows = []
    for e in exps:
        for app in e.applications:
            for ts in ("indist", "ood"):
                for r in range(n_rep):
                    auc = 0.8 + effects.get(e.id, 0.0) + rep_effect[r] + \
                        np.random.default_rng([zlib.crc32(e.id.encode()), r, len(ts)]).normal(0, 0.002)
                    rows.append({"experiment": e.id, "label": e.label, "group": e.groups[app],
                                 "application": app, "replicate": r, "test_set": ts, "auc": auc})
    return pd.DataFrame(rows)


def test_paired_stats_structure_and_values():
    exps = _design()
    effects = {"1x1-2_sgn": 0.03, "1x1_sgn": -0.03, "1-2x0": -0.05, "1-2x1-2_sgn": 0.0, "0x1_sgn": -0.1}
    auc = _auc_table(exps, effects)
    res = stats.paired_stats(auc, {e.id: e for e in exps}, n_boot=2000, seed=1)
    assert list(res.columns[:20]) == stats.STATS_COLUMNS[:20]
    aug = res[(res.application == "augmentation") & (res.test_set == "indist")]
    assert list(aug.experiment) == ["1x0", "1x1-2_sgn", "1x1_sgn"]
    base = aug.iloc[0]
    assert base.baseline == "1x0" and np.isnan(base.p_value) and not base.significant and base.direction == ""
    better = aug.set_index("experiment").loc["1x1-2_sgn"]
    assert better.direction == "better" and better.significant and better.baseline_label == "1:0"
    worse = aug.set_index("experiment").loc["1x1_sgn"]
    assert worse.direction == "worse"
    # n = 8, all differences of one sign: exact p = 2/256, Holm over 2 -> 2 * 2/256
    assert better.p_value == pytest.approx(2 / 256)
    assert better.p_adjusted == pytest.approx(4 / 256)
    # mean difference and CI against a direct computation
    e = auc[(auc.experiment == "1x1-2_sgn") & (auc.application == "augmentation") & (auc.test_set == "indist")]
    b = auc[(auc.experiment == "1x0") & (auc.application == "augmentation") & (auc.test_set == "indist")]
    d = e.sort_values("replicate").auc.to_numpy() - b.sort_values("replicate").auc.to_numpy()
    assert better.mean_diff == pytest.approx(d.mean())
    assert better.ci_low <= d.mean() <= better.ci_high
    assert better.sd_auc == pytest.approx(e.auc.std(ddof=1))
    # anonymization: group baseline 1/2:0, while 1/2:0 itself and 0:1 compare with 1:0 (from augmentation)
    an = res[(res.application == "anonymization") & (res.test_set == "ood")].set_index("experiment")
    assert an.loc["1-2x1-2_sgn", "baseline"] == "1-2x0"
    assert an.loc["1-2x0", "baseline"] == "1x0" and an.loc["0x1_sgn", "baseline"] == "1x0"
    assert an.loc["1-2x1-2_sgn", "baseline_mean_auc"] == pytest.approx(an.loc["1-2x0", "mean_auc"])
    assert an.loc["1-2x0", "baseline_mean_auc"] == pytest.approx(
        res[(res.application == "augmentation") & (res.test_set == "ood")].iloc[0]["mean_auc"])
    assert an.loc["0x1_sgn", "direction"] == "worse"
    p = an["p_value"].to_numpy()
    assert np.allclose(an["p_adjusted"].to_numpy(), stats.holm(p))
    # dicts (Experiment.to_dict) give the same result; seeds make it reproducible
    res2 = stats.paired_stats(auc, {e.id: e.to_dict() for e in exps}, n_boot=2000, seed=1)
    pd.testing.assert_frame_equal(res, res2)


def test_paired_stats_drops_unpaired_replicates():
    exps = _design()
    auc = _auc_table(exps, {"1x1-2_sgn": 0.02}, n_rep=6)
    auc = auc[~((auc.experiment == "1x1-2_sgn") & (auc.replicate == 5))]
    auc = auc[~((auc.experiment == "1x0") & (auc.replicate == 0))]
    res = stats.paired_stats(auc, exps, n_boot=500)
    row = res[(res.application == "augmentation") & (res.test_set == "indist")].set_index("experiment")
    assert row.loc["1x1-2_sgn", "n_pairs"] == 4 and row.loc["1x1-2_sgn", "n_unpaired"] == 2
    assert row.loc["1x1-2_sgn", "n_replicates"] == 5


def test_paired_stats_errors():
    exps = _design()
    auc = _auc_table(exps, {}, n_rep=3)
    with pytest.raises(InputError, match="auc"):
        stats.paired_stats(auc.drop(columns="auc"), exps)
    bad = auc.astype({"auc": object})
    bad.loc[3, "auc"] = "x"
    with pytest.raises(InputError, match="'auc'"):
        stats.paired_stats(bad, exps, source="results/auc.csv")
    with pytest.raises(InputError, match="duplicate"):
        stats.paired_stats(pd.concat([auc, auc.iloc[:1]]), exps)
    with pytest.raises(InputError, match="not among the declared"):
        stats.paired_stats(auc, [e for e in exps if e.id != "1x1_sgn"])
    with pytest.raises(InputError, match="baseline 1x0"):
        stats.paired_stats(auc[auc.experiment != "1x0"], exps)


# ------------------------------------------------------------------------------------------ DeLong
def _delong_brute(y, s):
    x, z = s[y == 1], s[y == 0]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10.var(ddof=1) / len(x) + v01.var(ddof=1) / len(z)


def test_delong_hand_case():
    # positives 0.9, 0.6, 0.4; negatives 0.7, 0.3, 0.2
    # psi rows: 0.9 -> 1 1 1; 0.6 -> 0 1 1; 0.4 -> 0 1 1 -> AUC = 7/9
    # V10 = 1, 2/3, 2/3 (var 1/27); V01 = 1/3, 1, 1 (var 4/27); Var = (1/27 + 4/27) / 3 = 5/81
    y = np.array([1, 1, 1, 0, 0, 0])
    s = np.array([0.9, 0.6, 0.4, 0.7, 0.3, 0.2])
    auc, var = stats.delong_auc_variance(y, s)
    assert auc == pytest.approx(7 / 9) and var == pytest.approx(5 / 81)
    _, lo, hi, se = stats.auc_ci(y, s, method="normal")
    assert se == pytest.approx(np.sqrt(5 / 81))
    assert lo == pytest.approx(7 / 9 - 1.959963984540054 * se) and hi == 1.0  # clipped
    _, lo, hi, _ = stats.auc_ci(y, s)  # logit: inside (0, 1)
    assert 0 < lo < 7 / 9 < hi < 1


def test_delong_matches_brute_force_and_bootstrap():
    rng = np.random.default_rng(0)
    n = 400
    y = (rng.random(n) < 0.3).astype(int)
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # ties, also across classes
    auc, var = stats.delong_auc_variance(y, s)
    ab, vb = _delong_brute(y, s)
    assert auc == pytest.approx(ab) and auc == pytest.approx(roc_auc(y, s))
    assert var == pytest.approx(vb, rel=1e-10)
    # stratified bootstrap SE
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    boots = []
    for _ in range(1000):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        boots.append(roc_auc(y[idx], s[idx]))
    assert np.sqrt(var) == pytest.approx(np.std(boots), rel=0.12)
    _, lo, hi, _ = stats.auc_ci(y, s, alpha=0.05)
    qlo, qhi = np.quantile(boots, [0.025, 0.975])
    assert abs(lo - qlo) < 0.02 and abs(hi - qhi) < 0.02


def test_auc_ci_edge_cases():
    a, lo, hi, se = stats.auc_ci([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert (a, lo, hi, se) == (1.0, 1.0, 1.0, 0.0)
    with pytest.raises(InputError, match="positives"):
        stats.auc_ci([0, 0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="labels"):
        stats.auc_ci([0, 2, 1, 1], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(InputError, match="method"):
        stats.auc_ci([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], method="wald")


# ------------------------------------------------------------------------------------------ tables
def test_summary_table_markdown_latex():
    exps = _design()
    auc = _auc_table(exps, {"1x1-2_sgn": 0.03, "1x1_sgn": -0.001}, n_rep=8)
    res = stats.paired_stats(auc, exps, n_boot=1000)
    tab = stats.summary_table(res, "augmentation", "indist")
    assert list(tab["Experiment"]) == ["1:0", "1:1/2 sgn", "1:1 sgn"]
    ccol = "95% CI (signed-rank)"
    assert list(tab.columns) == ["Experiment", "n", "AUC", "ΔAUC", ccol, "p (Holm)"]
    assert tab.iloc[0]["ΔAUC"] == "(baseline)" and tab.iloc[0]["p (Holm)"] == ""
    assert tab.iloc[0][ccol] == ""
    assert "±" in tab.iloc[1]["AUC"] and tab.iloc[1]["ΔAUC"].startswith("+0.0")
    # 8 pairs reach 95% (246/256): no note; the interval is the row's ci_low/ci_high
    row = res[(res.application == "augmentation") & (res.test_set == "indist")].iloc[1]
    assert tab.iloc[1][ccol] == f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
    assert row.ci_coverage == pytest.approx(246 / 256) and row.ci_method == "exact"
    assert tab.iloc[1]["p (Holm)"].endswith("*")
    md = stats.to_markdown(tab)
    lines = md.strip().split("\n")
    assert len(lines) == 2 + len(tab) and lines[1].startswith("|:---|")
    assert all(line.count("|") == len(tab.columns) + 1 for line in lines)
    tex = stats.to_latex(tab, caption="AUC 100% real", label="tab:aug")
    assert r"\begin{tabular}{lrrrrr}" in tex and r"$\pm$" in tex and r"$\Delta$" in tex
    assert r"100\%" in tex and r"\label{tab:aug}" in tex
    assert tex.count(r"\\") == 1 + len(tab)
    # anonymization figure has two baselines -> a Baseline column
    tab2 = stats.summary_table(res, "anonymization", "ood")
    assert "Baseline" in tab2.columns
    with pytest.raises(InputError, match="no rows"):
        stats.summary_table(res, "augmentation", "nope")


def test_three_replicates_interval_says_its_coverage():
    """The issue's case: 3 pairs, all differences negative. The old percentile bootstrap printed a
    '95% CI' excluding 0 beside p = 1.000 (Holm); now the interval is min..max of the differences, labelled
    75%, and it agrees with the unadjusted exact p = 0.25 (= 1 - 0.75)."""
    exps = _design()
    auc = _auc_table(exps, {"1x1-2_sgn": -0.087, "1x1_sgn": 0.001}, n_rep=3)
    res = stats.paired_stats(auc, exps, n_boot=1000)
    row = res[(res.application == "augmentation") & (res.test_set == "indist")].set_index("experiment")
    r = row.loc["1x1-2_sgn"]
    assert r.ci_method == "exact-widest" and r.ci_coverage == pytest.approx(0.75) and r.ci_level == 0.95
    assert r.p_value == pytest.approx(0.25) and r.ci_high < 0
    assert r.ci_low <= r.hl_estimate <= r.ci_high and r.t_low < r.mean_diff < r.t_high
    assert r.boot_low <= r.mean_diff <= r.boot_high
    tab = stats.summary_table(res, "augmentation", "indist").set_index("Experiment")
    cell = tab.loc["1:1/2 sgn", "95% CI (signed-rank)"]
    assert cell.endswith("(75% CI: n=3 too small for 95%)") and cell.startswith(f"[{r.ci_low:+.3f}, ")
    md = stats.to_markdown(tab.reset_index())
    assert "75% CI: n=3 too small for 95%" in md
    assert r"75\% CI" in stats.to_latex(tab.reset_index())
    assert stats.ci_note(0.9375, 0.95, 5) == "(93.8% CI: n=5 too small for 95%)"
    assert stats.ci_note(246 / 256, 0.95, 8) == ""
