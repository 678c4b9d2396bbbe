"""The spread of the paired differences of a study: for every comparison (application, test set, experiment
vs its baseline), the standard deviation over replicates of d_r = AUC(experiment, r) - AUC(baseline, r).
Common random numbers (classifier.common_random_numbers) should make it smaller: compare two runs of one
study, with the switch on and off.

    python dev/paired_spread.py results/auc.csv [other/results/auc.csv ...]
"""

import sys

import pandas as pd


def paired_spread(auc_csv) -> pd.DataFrame:
    """One row per comparison (experiment, baseline, test set): application, n, sd_diff, sd_experiment."""
    from ganaug.design import BASELINE_ID, Ratio, experiment_id, parse_ratio

    auc = pd.read_csv(auc_csv)
    wide = auc.drop_duplicates(["experiment", "test_set", "replicate"]).pivot_table(
        index=["test_set", "replicate"], columns="experiment", values="auc")
    rows = []
    for (app, exp), _ in auc.groupby(["application", "experiment"], sort=False):
        ratio = parse_ratio(auc.loc[auc["experiment"] == exp, "label"].iloc[0].split(" ")[0])
        base = BASELINE_ID  # as ganaug.design.build_experiments: 1/x:0 for anonymization with real 1/x
        same_real = experiment_id(Ratio(ratio.real, 0, 0))
        if app == "anonymization" and ratio.real > 0 and same_real in wide.columns and same_real != exp:
            base = same_real
        if base == exp:
            continue
        for test_set, sub in wide.groupby(level="test_set"):
            d = sub[exp] - sub[base]
            rows.append({"application": app, "test_set": test_set, "experiment": exp, "baseline": base,
                         "n": int(d.notna().sum()), "sd_diff": d.std(ddof=1), "sd_experiment": sub[exp].std(ddof=1)})
    # 1:1 sgn is compared with 1:0 in both figures: count each comparison once
    return pd.DataFrame(rows).drop_duplicates(["experiment", "baseline", "test_set"])


if __name__ == "__main__":
    for path in sys.argv[1:]:
        t = paired_spread(path)
        print(f"{path}: {len(t)} comparisons; sd of paired differences: mean {t['sd_diff'].mean():.4f}, "
              f"median {t['sd_diff'].median():.4f}; sd of an experiment's AUC: mean {t['sd_experiment'].mean():.4f}")
        print(t.groupby("test_set")[["sd_diff", "sd_experiment"]].mean().round(4).to_string())
