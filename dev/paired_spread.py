"""The spread of the paired differences of a study: for every comparison (experiment vs its baseline, per test
set), the standard deviation over replicates of d_r = AUC(experiment, r) - AUC(baseline, r). Common random
numbers (classifier.common_random_numbers) should make it smaller: compare two runs of one study, with the
switch on and off. The pairs are the workflow's own (the baseline column of results/stats.csv).

    python dev/paired_spread.py results [other/results ...]
"""

import sys
from pathlib import Path

import pandas as pd


def paired_spread(results) -> pd.DataFrame:
    """One row per comparison (experiment, baseline, test set): n, sd_diff, sd_experiment."""
    results = Path(results)
    auc = pd.read_csv(results / "auc.csv").drop_duplicates(["experiment", "test_set", "replicate"])
    wide = auc.pivot_table(index=["test_set", "replicate"], columns="experiment", values="auc")
    pairs = pd.read_csv(results / "stats.csv")[["experiment", "baseline", "test_set"]]
    # 1:1 sgn is compared with 1:0 in both figures: count each comparison once
    pairs = pairs[pairs["experiment"] != pairs["baseline"]].drop_duplicates()
    rows = []
    for p in pairs.itertuples(index=False):
        sub = wide.xs(p.test_set, level="test_set")
        d = sub[p.experiment] - sub[p.baseline]
        rows.append({"experiment": p.experiment, "baseline": p.baseline, "test_set": p.test_set,
                     "n": int(d.notna().sum()), "sd_diff": d.std(ddof=1), "sd_experiment": sub[p.experiment].std(ddof=1)})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        t = paired_spread(path)
        print(f"{path}: {len(t)} comparisons; sd of paired differences: mean {t['sd_diff'].mean():.4f}, "
              f"median {t['sd_diff'].median():.4f}; sd of an experiment's AUC: mean {t['sd_experiment'].mean():.4f}")
        print(t.groupby("test_set")[["sd_diff", "sd_experiment"]].mean().round(4).to_string())
