"""Markdown tables of a benchmark run: throughput per GAN and for the classifier (fp32 and bf16, and the
reference code beside the measured one when compared), and the study's predicted cost."""

from __future__ import annotations


def _num(v, digits=1) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:,.{digits}f}"
    return f"{v:.{digits + 1}g}" if abs(v) < 1 else f"{v:.{digits + 1}f}"


def _cell(res: dict | None, key: str) -> str:
    if not res:
        return "-"
    if res.get("status") == "n/a":
        return "n/a"
    if res.get("status") == "error":
        return "error"
    return _num(res.get(key))


def _ratio(new: dict | None, ref: dict | None, key: str) -> str:
    try:
        return f"{new[key] / ref[key]:.2f}x"
    except (TypeError, KeyError, ZeroDivisionError):
        return "-"


def throughput_tables(measurements: dict) -> str:
    """measurements: {"new": {...}, "ref": {...}?} as written by ganaug.bench."""
    new, ref = measurements.get("new") or {}, measurements.get("ref")
    lines = []
    gan_keys = [("train_img_s", "train img/s"), ("s_per_kimg", "s/kimg"), ("peak_memory_gb", "peak GB"),
                ("gen_img_s", "gen img/s")]
    if new.get("gans"):
        head = ["GAN", "px", "batch", "precision"] + [h for _, h in gan_keys]
        if ref:
            head += [f"ref {h}" for _, h in gan_keys if h != "peak GB"] + ["speed-up train", "speed-up gen"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for gan, by_prec in new["gans"].items():
            for prec, res in by_prec.items():
                row = [gan, str(res.get("resolution", "")), str(res.get("batch", "")), prec]
                row += [_cell(res, k) for k, _ in gan_keys]
                if ref:
                    r = ((ref.get("gans") or {}).get(gan) or {}).get(prec)
                    row += [_cell(r, k) for k, h in gan_keys if h != "peak GB"]
                    row += [_ratio(res, r, "train_img_s"), _ratio(res, r, "gen_img_s")]
                if res.get("status") in ("n/a", "error"):
                    row[-1] += f" ({res.get('reason') or res.get('error')})"
                lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    cls_keys = [("train_img_s", "train img/s"), ("tta_passes_s", "TTA passes/s"),
                ("eval_img_s", "eval img/s"), ("peak_memory_gb", "peak GB")]
    if new.get("classifier"):
        head = ["classifier", "px", "batch", "precision"] + [h for _, h in cls_keys]
        if ref:
            head += [f"ref {h}" for _, h in cls_keys[:3]] + ["speed-up train", "speed-up TTA"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for prec, res in new["classifier"].items():
            row = [res.get("model", ""), str(res.get("input_size", "")), str(res.get("batch", "")), prec]
            row += [_cell(res, k) for k, _ in cls_keys]
            if ref:
                r = (ref.get("classifier") or {}).get(prec)
                row += [_cell(r, k) for k, _ in cls_keys[:3]]
                row += [_ratio(res, r, "train_img_s"), _ratio(res, r, "tta_passes_s")]
            if res.get("status") in ("n/a", "error"):
                row[-1] += f" ({res.get('reason') or res.get('error')})"
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    if new.get("fid"):
        res = new["fid"]
        line = f"FID features ({res.get('network', '?')}, fp32, batch {res.get('batch', '?')}): " \
               f"{_cell(res, 'features_img_s')} img/s"
        if ref and ref.get("fid"):
            r = ref["fid"]
            line += f"; reference code ({r.get('network', '?')}): {_cell(r, 'features_img_s')} img/s"
        if res.get("status") == "error":
            line += f" ({res.get('error')})"
        lines += [line, ""]
    return "\n".join(lines)


def cost_table(costs: dict) -> str:
    """costs: {"new": study_cost(...), "ref": ...?}."""
    new, ref = costs.get("new"), costs.get("ref")
    if not new:
        return ""
    head = ["stage", "work", "jobs", "GPU-hours", "precision"] + (["ref GPU-hours"] if ref else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ref_by = {s["stage"]: s for s in (ref or {}).get("stages", [])}
    for s in new["stages"]:
        row = [s["stage"], s["detail"], str(s["jobs"]), _num(s["gpu_hours"], 2), s.get("precision") or ""]
        if ref:
            row.append(_num((ref_by.get(s["stage"]) or {}).get("gpu_hours"), 2))
        lines.append("| " + " | ".join(row) + " |")

    def total(c):
        if c["complete"]:
            return _num(c["total_gpu_hours"], 1)
        return f"incomplete (>= {_num(c['known_gpu_hours'])})"

    row = ["**total**", "", "", f"**{total(new)}**", ""] + ([total(ref)] if ref else [])
    lines.append("| " + " | ".join(row) + " |")
    a = new["assumptions"]
    lines.append("")
    if new["complete"]:
        lines.append(f"Every classifier run for all {a['max_epochs']} epochs instead: "
                     f"{_num(new['total_gpu_hours_all_epochs'], 1)} GPU-hours.")
        lines.append(f"Wall time on {new['gpus']} GPU(s) (GAN jobs on {new['gan_gpus']} GPU(s) each): "
                     f"{_num(new['wall_hours'], 1)} h (critical path {_num(new['critical_path_hours'], 1)} h"
                     + (f"; reference code {_num(ref['wall_hours'], 1)} h" if ref and ref["complete"] else "")
                     + ").")
    lines.append(f"Assumptions: {a['epochs_rule']}: best epoch {a['best_epoch']} -> {a['expected_epochs']} "
                 f"epochs per run; PGAN {a['pgan']}; wall time {a['wall']}.")
    return "\n".join(lines)
