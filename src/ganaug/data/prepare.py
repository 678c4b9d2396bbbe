"""One entry point for the workflow: a real dataset's inputs -> its index CSV and report, by kind."""

from __future__ import annotations

import logging
import os

import pandas as pd

from ..datasets import write_index
from ..io import InputError, seed_from, write_json
from .derm7pt import DERM7PT_COLUMN, index_derm7pt
from .dermofit import index_dermofit
from .isic2019 import index_isic2019
from .isic2020 import index_isic2020
from .sources import REAL_KINDS

log_default = logging.getLogger("ganaug")


def prepare_dataset(
    name: str, cfg: dict, inputs: dict, out_csv, out_report=None, seed: int = 2021, workers: int = 2, log=None
) -> pd.DataFrame:
    """Index one real dataset from its inputs ({role: path}: ground_truth, metadata, images, label_maps,
    list) and write it (atomically: a failure leaves any earlier output untouched) with a JSON report."""
    log = log or log_default
    kind = cfg.get("kind")
    report: dict = {"dataset": name, "kind": kind}
    lst = inputs.get("list")
    if lst is None and cfg.get("list") is not None:
        if not isinstance(cfg["list"], (str, os.PathLike)):
            raise InputError(f"datasets.{name}.list: a list to download ({cfg['list']}) must be passed as the "
                             "input 'list' (the workflow downloads it)")
        lst = cfg["list"]
    if kind == "isic2019":
        df = index_isic2019(
            inputs["ground_truth"],
            inputs["images"],
            inputs.get("metadata"),
            inputs.get("label_maps"),
            dataset=name,
            report=report,
        )
    elif kind == "isic2020":
        df = index_isic2020(
            inputs["ground_truth"],
            inputs["images"],
            subset_list=lst,
            subset=cfg.get("subset"),
            seed=int(cfg.get("seed", seed_from(seed, name))),
            dataset=name,
            report=report,
        )
    elif kind in DERM7PT_COLUMN:
        df = index_derm7pt(
            cfg["path"],
            DERM7PT_COLUMN[kind],
            subset_list=lst,
            near_duplicate_bits=int(cfg.get("near_duplicate_bits", 4)),
            dataset=name,
            report=report,
            workers=workers,
        )
    elif kind == "dermofit":
        df = index_dermofit(cfg["path"], subset_list=lst, dataset=name, report=report)
    else:
        raise InputError(f"datasets.{name}: kind '{kind}' is not a real dataset ({', '.join(REAL_KINDS)})")
    write_index(out_csv, df)
    if out_report is not None:
        write_json(out_report, report)
    log.info(
        "%s: %d images (%d melanoma, %d benign) -> %s",
        name,
        len(df),
        int(df["label"].sum()),
        int((df["label"] == 0).sum()),
        out_csv,
    )
    return df
