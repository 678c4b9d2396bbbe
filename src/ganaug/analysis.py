"""Aggregate per-run predictions into a tidy AUC table and draw Figure-2-style box plots.

The figures follow the look of Figure 2 of Bissoto et al. (2021): for one application
(augmentation or anonymization) and one test set, one horizontal box plot of AUC per experiment,
top to bottom in config order, y tick labels in the paper's ratio notation, every replicate drawn
as a point, a red dot at the mean, and the experiments of one factor group in one colour, with
consecutive groups alternating between two colours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ganaug.io import InputError, atomic_path

AUC_COLUMNS = ["experiment", "label", "group", "application", "replicate", "test_set", "auc", "auc_low",
               "auc_high", "auc_se"]
PREDICTION_COLUMNS = ("image", "label", "prob")

# Two light colours alternating between consecutive groups (light blue / light orange), and the
# darker edge colour of each, used for the box outline and the replicate points.
GROUP_COLOURS = ("#a6cee3", "#fdbf6f")
GROUP_EDGE_COLOURS = ("#1f4e79", "#9c5a00")
MEAN_COLOUR = "#d62728"


# ----------------------------------------------------------------------------------------------
# aggregation


def _field(obj, name, default=None):
    """Read `name` from a dict or from an object's attribute (Experiment dataclass)."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _experiment_table(experiments: Iterable) -> dict[str, dict]:
    """id -> {label, group, applications (tuple)}; validates the fields the analysis needs."""
    table: dict[str, dict] = {}
    for i, exp in enumerate(experiments):
        exp_id = _field(exp, "id")
        if not exp_id:
            raise InputError(f"experiments[{i}]: missing experiment 'id'")
        exp_id = str(exp_id)
        apps = _field(exp, "applications")
        if apps is None:
            app = _field(exp, "application")
            apps = () if app is None else (app,)
        elif isinstance(apps, str):
            apps = (apps,)
        apps = tuple(str(a) for a in apps)
        if not apps:
            raise InputError(f"experiments[{i}] ({exp_id}): no 'applications' given")
        label = str(_field(exp, "label") or exp_id)
        group = _field(exp, "group")
        group = "" if group is None else str(group)
        per_app = _field(exp, "groups") or {}  # optional {application: group} (design.Experiment)
        groups = {a: str(per_app.get(a, group)) for a in apps}
        if exp_id in table:
            prev = table[exp_id]
            # the same run listed once per application is fine; merge its applications
            clash = [a for a in apps if a in prev["groups"] and prev["groups"][a] != groups[a]]
            if prev["label"] != label or clash:
                raise InputError(
                    f"experiments[{i}]: experiment id '{exp_id}' given twice with different label/group"
                )
            prev["applications"] = tuple(dict.fromkeys(prev["applications"] + apps))
            prev["groups"].update(groups)
            continue
        table[exp_id] = {"label": label, "groups": groups, "applications": apps}
    return table


def read_predictions(csv_path) -> pd.DataFrame:
    """Read one prediction CSV (columns image, label, prob) and validate it."""
    try:
        df = pd.read_csv(csv_path)
    except FileNotFoundError as e:
        raise InputError(f"{csv_path}: prediction file not found") from e
    except Exception as e:
        raise InputError(f"{csv_path}: cannot read prediction CSV ({type(e).__name__}: {e})") from e
    missing = [c for c in PREDICTION_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(
            f"{csv_path}: missing column(s) {missing}; "
            f"a prediction CSV needs columns {list(PREDICTION_COLUMNS)}"
        )
    if len(df) == 0:
        raise InputError(f"{csv_path}: prediction CSV has no rows")
    labels = pd.to_numeric(df["label"], errors="coerce")
    if labels.isna().any() or not labels.isin([0, 1]).all():
        bad = df.loc[labels.isna() | ~labels.isin([0, 1]), "label"].unique()[:5]
        raise InputError(f"{csv_path}: column 'label' must be 0 or 1, found {list(bad)}")
    probs = pd.to_numeric(df["prob"], errors="coerce")
    if probs.isna().any() or not np.isfinite(probs.to_numpy()).all():
        raise InputError(f"{csv_path}: column 'prob' has missing or non-finite values")
    out = df.copy()
    out["label"] = labels.astype(np.int64)
    out["prob"] = probs.astype(np.float64)
    return out


def aggregate(predictions: Iterable[tuple], experiments: Iterable) -> pd.DataFrame:
    """Tidy AUC table from per-run prediction CSVs.

    predictions: (experiment_id, replicate, test_set, csv_path) tuples; each CSV has columns
    image, label (1 = melanoma), prob (probability of melanoma).
    experiments: dicts or Experiment-like objects with id, label, group and applications (a tuple;
    a single `application` is accepted too); an optional `groups` mapping {application: group}
    overrides `group` per application.

    Returns a DataFrame with columns experiment, label, group, application, replicate, test_set, auc and
    the 95% DeLong confidence interval of that AUC (auc_low, auc_high; logit scale) with its standard
    error auc_se, i.e. the test-set sampling noise of one run: one row per (prediction file, application the experiment belongs to), ordered by application
    (first appearance), experiment (config order), test set (first appearance), replicate.
    """
    from ganaug.metrics import roc_auc
    from ganaug.stats import auc_ci

    table = _experiment_table(experiments)
    exp_rank = {e: i for i, e in enumerate(table)}
    rows = []
    seen: dict[tuple, str] = {}
    test_rank: dict[str, int] = {}
    for entry in predictions:
        try:
            exp_id, replicate, test_set, csv_path = entry
        except (TypeError, ValueError) as e:
            raise InputError(
                f"predictions: expected (experiment_id, replicate, test_set, csv_path), got {entry!r}"
            ) from e
        exp_id, test_set = str(exp_id), str(test_set)
        if exp_id not in table:
            raise InputError(f"{csv_path}: experiment '{exp_id}' is not among the declared experiments")
        try:
            replicate = int(replicate)
        except (TypeError, ValueError) as e:
            raise InputError(f"{csv_path}: replicate must be an integer, got {replicate!r}") from e
        key = (exp_id, replicate, test_set)
        if key in seen:
            raise InputError(
                f"{csv_path}: duplicate predictions for experiment {exp_id}, replicate {replicate}, "
                f"test set {test_set} (also in {seen[key]})"
            )
        seen[key] = str(csv_path)
        test_rank.setdefault(test_set, len(test_rank))
        df = read_predictions(csv_path)
        try:
            auc = float(roc_auc(df["label"].to_numpy(), df["prob"].to_numpy()))
            _, low, high, se = auc_ci(df["label"].to_numpy(), df["prob"].to_numpy())
        except InputError as e:
            raise InputError(f"{csv_path}: cannot compute AUC: {e}") from e
        info = table[exp_id]
        for app in info["applications"]:
            rows.append(
                {
                    "experiment": exp_id,
                    "label": info["label"],
                    "group": info["groups"][app],
                    "application": app,
                    "replicate": replicate,
                    "test_set": test_set,
                    "auc": auc,
                    "auc_low": low,
                    "auc_high": high,
                    "auc_se": se,
                }
            )
    out = pd.DataFrame(rows, columns=AUC_COLUMNS)
    if out.empty:
        return out
    app_rank = {}
    for info in table.values():
        for a in info["applications"]:
            app_rank.setdefault(a, len(app_rank))
    order = pd.DataFrame(
        {
            "a": out["application"].map(app_rank),
            "e": out["experiment"].map(exp_rank),
            "t": out["test_set"].map(test_rank),
            "r": out["replicate"],
        }
    )
    idx = order.sort_values(["a", "e", "t", "r"], kind="stable").index
    out = out.loc[idx].reset_index(drop=True)
    out["replicate"] = out["replicate"].astype(np.int64)
    return out


# ----------------------------------------------------------------------------------------------
# figures


def group_colours(groups: Sequence[str]) -> list[int]:
    """Colour index (0 or 1) per row: rows of one group share a colour; the index flips whenever the
    group changes from one row to the next, so consecutive groups alternate."""
    out, current, prev = [], 0, object()
    for i, g in enumerate(groups):
        if i > 0 and g != prev:
            current = 1 - current
        out.append(current)
        prev = g
    return out


def _select(auc: pd.DataFrame, application: str, test_set: str, order: Sequence[str] | None):
    needed = ("experiment", "label", "group", "application", "test_set", "auc")
    missing_cols = [c for c in needed if c not in auc]
    if missing_cols:
        raise InputError(f"AUC table: missing column(s) {missing_cols}")
    sub = auc[(auc["application"] == application) & (auc["test_set"] == test_set)]
    if sub.empty:
        raise InputError(f"AUC table: no rows for application '{application}' and test set '{test_set}'")
    if order is None:
        order = list(dict.fromkeys(sub["experiment"]))
    order = [str(e) for e in order]
    if len(set(order)) != len(order):
        dup = sorted({e for e in order if order.count(e) > 1})
        raise InputError(f"figure order for '{application}': experiment(s) listed twice: {dup}")
    present = set(sub["experiment"])
    missing = [e for e in order if e not in present]
    if missing:
        raise InputError(
            f"AUC table: no AUC values for experiment(s) {missing} "
            f"(application '{application}', test set '{test_set}')"
        )
    return sub, order


def draw_figure(auc: pd.DataFrame, application: str, test_set: str, order: Sequence[str] | None = None,
                baseline: str | None = None, significance: Mapping[str, str] | None = None):
    """Build (but do not save) the Figure-2-style figure; returns the matplotlib Figure.

    order: experiment ids top to bottom (default: order of appearance in `auc`). Experiments of the
    AUC table not in `order` are left out. baseline: optional experiment id whose mean AUC is drawn as
    a dotted vertical reference line. significance: experiment id -> 'better' | 'worse' for experiments
    whose Holm-adjusted paired difference to their baseline is significant; marked at the right edge
    with a triangle pointing up (better) or down (worse).
    """
    # A bare Figure with an Agg canvas: no pyplot, no global state, never opens a window.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sub, order = _select(auc, application, test_set, order)
    n = len(order)
    values = [sub.loc[sub["experiment"] == e, "auc"].to_numpy(dtype=float) for e in order]
    labels = [str(sub.loc[sub["experiment"] == e, "label"].iloc[0]) for e in order]
    groups = [str(sub.loc[sub["experiment"] == e, "group"].iloc[0]) for e in order]
    cidx = group_colours(groups)

    # Size scales with the number of rows; width leaves room for the longest label.
    max_label = max(len(s) for s in labels)
    height = 0.9 + 0.32 * n
    width = 5.0 + 0.07 * max_label
    fig = Figure(figsize=(width, height), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)

    # top to bottom in config order: row k at y = n - k
    ypos = np.arange(n, 0, -1, dtype=float)
    bp = ax.boxplot(
        values,
        positions=ypos,
        orientation="horizontal",
        widths=0.6,
        patch_artist=True,
        showfliers=False,  # every replicate is drawn as a point anyway
        whis=1.5,
        medianprops={"color": "black", "linewidth": 1.0},
        whiskerprops={"color": "#444444", "linewidth": 0.9},
        capprops={"color": "#444444", "linewidth": 0.9},
        boxprops={"linewidth": 0.9},
        manage_ticks=False,
    )
    for box, c in zip(bp["boxes"], cidx):
        box.set_facecolor(GROUP_COLOURS[c])
        box.set_edgecolor(GROUP_EDGE_COLOURS[c])
        box.set_gid("group-box")

    rng = np.random.default_rng(0)  # deterministic vertical jitter of the replicate points
    for y, v, c in zip(ypos, values, cidx):
        jitter = rng.uniform(-0.12, 0.12, size=len(v)) if len(v) > 1 else np.zeros(len(v))
        ax.scatter(v, y + jitter, s=14, color=GROUP_EDGE_COLOURS[c], alpha=0.75, linewidths=0, zorder=3)
        ax.scatter([v.mean()], [y], s=28, color=MEAN_COLOUR, edgecolors="white", linewidths=0.5, zorder=4)

    marks = {e: d for e, d in (significance or {}).items() if d in ("better", "worse")}
    for y, e in zip(ypos, order):
        if e in marks:
            better = marks[e] == "better"
            ax.annotate("\u25b2" if better else "\u25bc", xy=(1.0, y), xycoords=("axes fraction", "data"),
                        xytext=(4, 0), textcoords="offset points", va="center", ha="left", fontsize=8,
                        color="#1a7f37" if better else "#b42318", gid=f"significant-{marks[e]}")

    if baseline is not None:
        base = sub.loc[sub["experiment"] == str(baseline), "auc"]
        if base.empty:
            raise InputError(f"AUC table: baseline experiment '{baseline}' has no AUC values for "
                             f"application '{application}', test set '{test_set}'")
        ax.axvline(float(base.mean()), color="#777777", linestyle=":", linewidth=1.0, zorder=1)

    ax.set_yticks(ypos)
    ax.set_yticklabels(labels)
    ax.set_ylim(0.4, n + 0.6)
    allv = np.concatenate(values)
    lo, hi = float(allv.min()), float(allv.max())
    pad = max(0.01, 0.08 * (hi - lo))
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_xlabel("AUC")
    ax.set_title(f"{application} - {test_set}")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def _save(fig, path, fmt: str) -> None:
    metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, bbox_inches="tight", pad_inches=0.05, metadata=metadata)


def plot_figure(auc: pd.DataFrame, application: str, test_set: str, order: Sequence[str] | None,
                out_png, out_pdf=None, baseline: str | None = None,
                significance: Mapping[str, str] | None = None) -> dict:
    """Draw the Figure-2-style plot for one application and test set; write PNG (and PDF) atomically.

    Returns {"png": Path, "pdf": Path | None, "colours": {experiment id: colour index 0/1}}.
    """
    fig = draw_figure(auc, application, test_set, order, baseline=baseline, significance=significance)
    _save(fig, out_png, "png")
    if out_pdf is not None:
        _save(fig, out_pdf, "pdf")
    sub, order = _select(auc, application, test_set, order)
    groups = [str(sub.loc[sub["experiment"] == e, "group"].iloc[0]) for e in order]
    return {
        "png": Path(out_png),
        "pdf": None if out_pdf is None else Path(out_pdf),
        "colours": dict(zip(order, group_colours(groups))),
    }


def plot_all(auc_df: pd.DataFrame, experiments_order: Mapping[str, Sequence[str]], out_dir,
             baselines: Mapping[str, str] | None = None, stats: pd.DataFrame | None = None) -> list[Path]:
    """Write {out_dir}/{application}_{test_set}.png and .pdf for every application in
    `experiments_order` and every test set present for it in `auc_df`; return the paths written.

    experiments_order: application -> experiment ids top to bottom (ids without AUC rows for a test set
    raise InputError). baselines: optional application -> baseline experiment id (dotted line).
    stats: optional paired-statistics table (ganaug.stats.paired_stats); its significant differences
    are marked on the figures.
    """
    out_dir = Path(out_dir)
    paths: list[Path] = []
    for app, order in experiments_order.items():
        sub = auc_df[auc_df["application"] == app]
        if sub.empty:
            continue
        for test_set in dict.fromkeys(sub["test_set"]):
            stem = f"{app}_{test_set}"
            png, pdf = out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"
            base = None if baselines is None else baselines.get(app)
            marks = None
            if stats is not None:
                fig = stats[(stats["application"] == app) & (stats["test_set"] == test_set)]
                marks = dict(zip(fig["experiment"], fig["direction"].fillna("")))
            plot_figure(auc_df, app, test_set, order, png, pdf, baseline=base, significance=marks)
            paths += [png, pdf]
    return paths


__all__ = [
    "AUC_COLUMNS",
    "GROUP_COLOURS",
    "aggregate",
    "draw_figure",
    "group_colours",
    "plot_all",
    "plot_figure",
    "read_predictions",
]
