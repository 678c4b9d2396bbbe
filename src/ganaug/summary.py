"""A few lines that say, before anything runs, which study a config describes: the design (experiments,
replicates, test sets), where the split comes from and its expected counts, each GAN's length and the
classifier protocol. The workflow prints it at start-up, so a dry run shows the study as it will run."""

from __future__ import annotations

from .design import APPLICATIONS, Experiment, application_order
from .gans import BUILTIN, expand_gan, is_external


def _n(x) -> str:
    x = float(x)
    return f"{x:,.0f}" if x == int(x) else f"{x:,.1f}"


def study_summary(config: dict, experiments: list[Experiment]) -> str:
    """The study of a validated config (``check_config``'s experiments), as plain text lines."""
    from .data.splits import split_description

    reps = int(config["replicates"])
    per_app = {a: application_order(experiments, a) for a in APPLICATIONS}
    shared = [e.label for e in experiments if len(e.applications) > 1]
    design = " + ".join(f"{len(ids)} {a}" for a, ids in per_app.items() if ids)
    lines = [f"design: {design} experiments = {len(experiments)} distinct"
             + (f" ({', '.join(shared)} in both)" if shared else "")
             + f" x {reps} replicates = {len(experiments) * reps} classifier trainings; "
             f"test sets: {', '.join(config['testsets'])}"]
    split = split_description(config)
    lines.append(split["text"])
    used = {g for e in experiments for g in expand_gan(e.gan)}
    n_train = (split.get("expected") or {}).get("train")
    gans = []
    for gan in BUILTIN:
        if gan not in used:
            continue
        cfg = config["gans"].get(gan, {})
        text = f"{gan} {_n(cfg['total_kimg'])} kimg" if "total_kimg" in cfg else f"{gan} (default length)"
        if n_train and "total_kimg" in cfg and gan in ("stylegan2", "pgan", "diffusion"):
            text += f" ({_n(float(cfg['total_kimg']) * 1000 / n_train)} epochs of {n_train:,} images)"
        if "snapshot_kimg" in cfg:
            text += f", snapshot every {_n(cfg['snapshot_kimg'])} kimg"
        gans.append(text)
    if gans:
        from .fid import fid_settings

        fid = fid_settings(config.get("fid"))
        lines.append(f"GANs: {'; '.join(gans)} (pix2pixHD / SPADE: on the images with label maps); checkpoint by "
                     f"FID on {fid['features']} features, a later snapshot preferred when less than "
                     f"{fid['tolerance']} worse")
    externals = [g for g in config["gans"] if g in used and is_external(g, config["gans"])]
    if externals:
        lines.append("external pools (no training, no checkpoint choice): " + "; ".join(
            f"{g} ({config['gans'][g]['abbreviation']}) from {config['gans'][g]['path']}" for g in externals))
    c = config["classifier"]
    lines.append(f"classifier: {c.get('model')}{' pretrained' if c.get('pretrained') else ''}, "
                 f"{c.get('input_size')} px, batch {c.get('batch_size')}, lr {c.get('lr')}, up to "
                 f"{c.get('epochs')} epochs (early stopping {c.get('early_stopping_patience')}), "
                 f"normalisation {c.get('normalize', 'imagenet')}, TTA {c.get('tta')}")
    return "\n".join(lines)
