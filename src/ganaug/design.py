"""The experimental design: ratio notation, per-class counts, the experiment table, paired real subsets.

Ratios are written as in the paper:
- ``"a:b"``     real fraction a of each class, synthetic fraction b of each class;
- ``"(a:b:c)"`` real fraction a, synthetic benign fraction b, synthetic melanoma fraction c.
Fractions are parsed with ``fractions.Fraction`` (``1``, ``1/2``, ``15/16``, ``0``). Counts are per class,
relative to the class counts of the full real training set, rounded half to even (Python ``round``).
Example with 11684 benign / 3121 melanoma: ``1:1/4`` adds 2921 + 780 synthetic; ``(1:1/2:3/4)`` adds
5842 + 2341; ``1/16:15/16`` uses 730 + 195 real and 10954 + 2926 synthetic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pandas as pd

from .gans import ABBREVIATIONS as GAN_ABBREVIATIONS
from .gans import TRAINABLE
from .io import InputError, seed_from
from .sampling import ABBREVIATIONS as SAMPLING_ABBREVIATIONS
from .sampling import SAMPLING_METHODS

APPLICATIONS = ("augmentation", "anonymization")
ENTRY_KEYS = ("ratio", "gan", "sampling", "group")
BASELINE_ID = "1x0"


@dataclass(frozen=True)
class Ratio:
    real: Fraction
    synth_benign: Fraction
    synth_melanoma: Fraction

    @property
    def has_synthetic(self) -> bool:
        return self.synth_benign > 0 or self.synth_melanoma > 0

    def synthetic(self, label: int) -> Fraction:
        return self.synth_melanoma if int(label) == 1 else self.synth_benign

    def __str__(self) -> str:  # canonical paper notation
        return format_ratio(self)


def _frac(text: str, whole: str) -> Fraction:
    t = text.strip()
    if not re.fullmatch(r"\d+(/\d+)?|\d*\.\d+", t):
        raise InputError(f"ratio '{whole}': '{text}' is not a non-negative fraction like 1, 1/2 or 15/16")
    try:
        return Fraction(t)
    except ZeroDivisionError as e:
        raise InputError(f"ratio '{whole}': '{text}' divides by zero") from e


def parse_ratio(text) -> Ratio:
    """Parse ``"a:b"`` or ``"(a:b:c)"``; malformed text or a real fraction > 1 -> InputError naming it."""
    if not isinstance(text, str):
        raise InputError(f"ratio {text!r}: expected a string like '1:1/2' or '(1:1/2:3/4)' (quote it in YAML)")
    s = text.strip()
    paren = s.startswith("(") or s.endswith(")")
    if paren:
        if not (s.startswith("(") and s.endswith(")")):
            raise InputError(f"ratio '{text}': unbalanced parentheses")
        parts = s[1:-1].split(":")
        if len(parts) != 3:
            raise InputError(f"ratio '{text}': '(a:b:c)' needs three fractions (real, synthetic benign, "
                             f"synthetic melanoma)")
        real, b, m = (_frac(p, text) for p in parts)
    else:
        parts = s.split(":")
        if len(parts) != 2:
            raise InputError(f"ratio '{text}': expected 'a:b' (real:synthetic) or '(a:b:c)' "
                             f"(real:synthetic benign:synthetic melanoma)")
        real, b = (_frac(p, text) for p in parts)
        m = b
    if real > 1:
        raise InputError(f"ratio '{text}': the real fraction {real} is larger than 1 (the whole training set)")
    r = Ratio(real, b, m)
    if real == 0 and not r.has_synthetic:
        raise InputError(f"ratio '{text}': no real and no synthetic images leaves nothing to train on")
    return r


def format_ratio(ratio: Ratio) -> str:
    """Canonical paper notation: 'a:b' when both synthetic fractions are equal, else '(a:b:c)'."""
    if ratio.synth_benign == ratio.synth_melanoma:
        return f"{ratio.real}:{ratio.synth_benign}"
    return f"({ratio.real}:{ratio.synth_benign}:{ratio.synth_melanoma})"


def counts(ratio: Ratio | str, class_counts: dict) -> dict:
    """Per-class numbers of real and synthetic images: round(fraction * n_class), half to even."""
    if isinstance(ratio, str):
        ratio = parse_ratio(ratio)
    out = {"real": {}, "synthetic": {}}
    for label in (0, 1):
        if label not in class_counts:
            raise InputError(f"class counts: no count for class {label} (got {dict(class_counts)})")
        n = int(class_counts[label])
        out["real"][label] = round(ratio.real * n)
        out["synthetic"][label] = round(ratio.synthetic(label) * n)
    return out


def _check_gan(gan, key: str) -> None:
    if gan != "all" and gan not in TRAINABLE:
        raise InputError(f"{key}: unknown GAN '{gan}' (known: {', '.join(TRAINABLE)}, or 'all')")


def _check_sampling(sampling, key: str) -> None:
    if sampling not in SAMPLING_METHODS:
        raise InputError(f"{key}: unknown sampling method '{sampling}' (known: {', '.join(SAMPLING_METHODS)})")


def format_label(ratio_text, gan=None, sampling=None) -> str:
    """Paper-style label: '1:0', '1:1/2 sgn', '1:1/2 sgn bst', '(1:1/2:3/4) sgn'.

    The gan is omitted when the ratio has no synthetic images; sampling 'random' (the default) is omitted.
    """
    ratio = parse_ratio(ratio_text) if isinstance(ratio_text, str) else ratio_text
    parts = [format_ratio(ratio)]
    if ratio.has_synthetic:
        if gan is None:
            raise InputError(f"ratio '{format_ratio(ratio)}' has synthetic images but no gan")
        _check_gan(gan, "gan")
        parts.append(GAN_ABBREVIATIONS[gan])
        if sampling not in (None, "random"):
            _check_sampling(sampling, "sampling")
            parts.append(SAMPLING_ABBREVIATIONS[sampling])
    return " ".join(parts)


def experiment_id(ratio_text, gan=None, sampling=None) -> str:
    """Filesystem-safe id: '1x0', '1x1-2_sgn', '1x1-2_sgn_bst', '1x1-2x3-4_sgn', '1-16x15-16_sgn'."""
    ratio = parse_ratio(ratio_text) if isinstance(ratio_text, str) else ratio_text
    fr = [ratio.real, ratio.synth_benign]
    if ratio.synth_benign != ratio.synth_melanoma:
        fr.append(ratio.synth_melanoma)
    head = "x".join(str(f).replace("/", "-") for f in fr)
    tail = format_label(ratio, gan, sampling).split(" ")[1:]
    return "_".join([head] + tail)


@dataclass
class Experiment:
    """One training-set design (one run per replicate), shown in one or more applications' figures.

    `group`/`baseline_id` are those of the first application that declares it; `groups`/`baselines`/
    `positions` hold them per application (an experiment declared in both applications can have a
    different group and baseline in each).
    """

    id: str
    applications: tuple
    ratio_text: str
    ratio: Ratio
    gan: str | None
    sampling: str | None
    group: str
    label: str
    baseline_id: str
    groups: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    positions: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)  # application -> config key path, for messages

    @property
    def application(self) -> str:
        return self.applications[0]

    def to_dict(self) -> dict:
        return {
            "id": self.id, "applications": list(self.applications), "ratio": self.ratio_text,
            "real": str(self.ratio.real), "synth_benign": str(self.ratio.synth_benign),
            "synth_melanoma": str(self.ratio.synth_melanoma), "gan": self.gan, "sampling": self.sampling,
            "group": self.group, "label": self.label, "baseline_id": self.baseline_id,
            "groups": dict(self.groups), "baselines": dict(self.baselines), "positions": dict(self.positions),
        }

    def data_dict(self) -> dict:
        """What decides the experiment's train sets (ratio, GAN, sampling), without where the figures show
        it (applications, group, baseline, position): the params of the rules that build its data, so that
        a change of figure layout (an experiment added to the anonymization figure, a new order) re-runs no
        sampling and no training. ``from_dict`` rebuilds an Experiment from it."""
        d = self.to_dict()
        return {k: d[k] for k in ("id", "ratio", "real", "synth_benign", "synth_melanoma", "gan", "sampling",
                                  "label")}

    @classmethod
    def from_dict(cls, d: dict) -> Experiment:
        """Inverse of to_dict (e.g. for Snakemake params, which must be plain data); also takes a
        ``data_dict`` (no applications, groups or baselines)."""
        try:
            ratio = Ratio(Fraction(d["real"]), Fraction(d["synth_benign"]), Fraction(d["synth_melanoma"]))
            apps = tuple(d.get("applications") or ())
            group, baseline = d.get("group", ""), d.get("baseline_id", "")
            return cls(
                id=d["id"], applications=apps, ratio_text=d["ratio"], ratio=ratio, gan=d.get("gan"),
                sampling=d.get("sampling"), group=group, label=d["label"], baseline_id=baseline,
                groups=dict(d.get("groups") or ({apps[0]: group} if apps else {})),
                baselines=dict(d.get("baselines") or ({apps[0]: baseline} if apps else {})),
                positions=dict(d.get("positions") or {}),
            )
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise InputError(f"experiment record {d!r}: cannot rebuild an Experiment ({e})") from e


def build_experiments(cfg_experiments: dict) -> list[Experiment]:
    """Validate the ``experiments`` config section and return one Experiment per unique id.

    Order: config order, augmentation entries first, then anonymization entries not seen before. Errors
    name the key path, e.g. ``experiments.augmentation[3].sampling``.
    """
    if not isinstance(cfg_experiments, dict) or not cfg_experiments:
        raise InputError("experiments: expected a mapping with 'augmentation' and/or 'anonymization' lists")
    unknown = [a for a in cfg_experiments if a not in APPLICATIONS]
    if unknown:
        raise InputError(f"experiments.{unknown[0]}: unknown application (known: {', '.join(APPLICATIONS)})")
    by_id: dict[str, Experiment] = {}
    per_app: dict[str, list[str]] = {}
    for app in APPLICATIONS:
        entries = cfg_experiments.get(app)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise InputError(f"experiments.{app}: expected a list of experiments")
        seen: dict[str, str] = {}
        per_app[app] = []
        for i, entry in enumerate(entries):
            key = f"experiments.{app}[{i}]"
            if isinstance(entry, str):
                entry = {"ratio": entry}
            if not isinstance(entry, dict):
                raise InputError(f"{key}: expected a mapping like {{ratio: '1:1/2', gan: stylegan2}}")
            extra = [k for k in entry if k not in ENTRY_KEYS]
            if extra:
                raise InputError(f"{key}.{extra[0]}: unknown key (allowed: {', '.join(ENTRY_KEYS)})")
            if "ratio" not in entry:
                raise InputError(f"{key}.ratio: missing")
            try:
                ratio = parse_ratio(entry["ratio"])
            except InputError as e:
                raise InputError(f"{key}.ratio: {e}") from None
            gan = entry.get("gan")
            sampling = entry.get("sampling")
            if ratio.has_synthetic:
                if gan is None:
                    raise InputError(f"{key}.gan: ratio '{entry['ratio']}' uses synthetic images but names no gan")
                _check_gan(gan, f"{key}.gan")
                sampling = "random" if sampling is None else sampling
                _check_sampling(sampling, f"{key}.sampling")
            else:
                for k in ("gan", "sampling"):
                    if entry.get(k) is not None:
                        raise InputError(f"{key}.{k}: ratio '{entry['ratio']}' has no synthetic images; "
                                         f"remove '{k}'")
            eid = experiment_id(ratio, gan, sampling)
            if eid in seen:
                raise InputError(f"{key}: duplicate of {seen[eid]} (same ratio, gan and sampling: '{eid}')")
            seen[eid] = key
            group = entry.get("group")
            group = str(group) if group is not None else format_ratio(ratio)
            label = format_label(ratio, gan, sampling)
            if eid in by_id:
                ex = by_id[eid]
                ex.applications = ex.applications + (app,)
            else:
                ex = Experiment(eid, (app,), str(entry["ratio"]), ratio, gan, sampling, group, label, "")
                by_id[eid] = ex
            ex.groups[app] = group
            ex.positions[app] = i
            ex.keys[app] = key
            per_app[app].append(eid)
    if BASELINE_ID not in by_id:
        raise InputError("experiments: the baseline '1:0' (all real images, no synthetic) is not declared; "
                         "add {ratio: '1:0', group: baseline} to experiments.augmentation")
    for app, ids in per_app.items():
        for eid in ids:
            ex = by_id[eid]
            base = BASELINE_ID
            if app == "anonymization" and ex.ratio.real > 0:
                same_real = experiment_id(Ratio(ex.ratio.real, Fraction(0), Fraction(0)))
                if same_real in by_id and same_real != eid:
                    base = same_real
            ex.baselines[app] = base
    for ex in by_id.values():
        ex.group = ex.groups[ex.applications[0]]
        ex.baseline_id = ex.baselines[ex.applications[0]]
    return list(by_id.values())


def application_order(experiments: list[Experiment], application: str) -> list[str]:
    """Ids of the experiments of one application in config order (the figure's top-to-bottom order)."""
    members = [e for e in experiments if application in e.applications]
    return [e.id for e in sorted(members, key=lambda e: e.positions[application])]


def experiment_table(experiments: list[Experiment]) -> pd.DataFrame:
    """One row per (application, experiment): application, position, id, label, group, baseline_id, ..."""
    rows = []
    for e in experiments:
        for app in e.applications:
            rows.append({
                "application": app, "position": e.positions[app], "id": e.id, "label": e.label,
                "group": e.groups[app], "baseline_id": e.baselines[app], "ratio": format_ratio(e.ratio),
                "gan": e.gan, "sampling": e.sampling,
            })
    cols = ["application", "position", "id", "label", "group", "baseline_id", "ratio", "gan", "sampling"]
    return pd.DataFrame(rows, columns=cols).sort_values(["application", "position"], kind="stable") \
        .reset_index(drop=True)


def real_subset(train: pd.DataFrame, fraction, replicate: int, seed: int) -> pd.DataFrame:
    """The real training images of replicate `replicate` for a real `fraction` (nested, paired design).

    Per class, a permutation seeded from (seed, "real", replicate, label) orders the rows; the first
    round(fraction * n_class) are taken. Every experiment with the same fraction and replicate gets the
    same subset, and a smaller fraction's subset is contained in a larger one's. Rows come back in the
    original order of `train` (fraction 1 -> `train` itself, unchanged order).
    """
    fraction = Fraction(fraction) if not isinstance(fraction, Fraction) else fraction
    if not 0 <= fraction <= 1:
        raise InputError(f"real fraction {fraction} must be between 0 and 1")
    if "label" not in train.columns:
        raise InputError(f"training set: missing column 'label' (columns: {list(train.columns)})")
    labels = train["label"].to_numpy()
    keep = []
    for label in (0, 1):
        pos = np.flatnonzero(labels == label)
        n = round(fraction * len(pos))
        if n == 0:
            continue
        rng = np.random.default_rng(seed_from(seed, "real", replicate, label))
        keep.append(pos[rng.permutation(len(pos))[:n]])
    allpos = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
    return train.iloc[allpos]


def synthetic_seed(experiment, base_seed: int) -> int:
    """Seed of an experiment's synthetic subset: independent of the replicate (subsets fixed across
    replicates) and of the ratio, so with the same gan and sampling method the subsets of different
    ratios are nested (a smaller count takes a prefix of the same order)."""
    gan = experiment.gan if hasattr(experiment, "gan") else experiment["gan"]
    sampling = experiment.sampling if hasattr(experiment, "sampling") else experiment["sampling"]
    return seed_from(base_seed, "synthetic", gan, sampling)
