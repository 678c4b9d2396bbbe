"""Fine-tuning loop of the study's classifiers: SGD with momentum, ReduceLROnPlateau on validation
loss, early stopping, best model by validation loss; checkpoint after every epoch so a killed job
resumes at the next epoch and ends with results identical to an uninterrupted run (CPU).

Inputs are z-normalised with ImageNet's mean and standard deviation (``normalize: imagenet``, the
paper's text) or with the model's own settings (``normalize: model``); the choice is stored in the
saved ModelInfo, so evaluation, pool scoring and feature extraction normalise as training did.
Training images are augmented on the device per batch (classifier.augment.BatchAugment); each epoch's
sample order and augmentation parameters are drawn once, before its first step, and moved to the device
in one copy, so a step neither draws on the host nor waits for a host-to-device copy; the training loss
is summed on the device and read once per epoch. Precision (``precision``): ``auto`` runs the forward
pass under bfloat16 autocast on CUDA and in float32 elsewhere (weights, gradients and the optimiser
stay float32); ``fp32`` or ``bf16`` force one. Validation is
computed without augmentation, or (``val_augment: true``, as the authors' code did) on one fresh random
augmentation of every validation image per epoch. All randomness comes from explicit seeds: model
init, data order, augmentation draws, validation augmentation and the global torch RNG (dropout and
the like); generator states are checkpointed.

Common random numbers (``sample_ids`` given; the workflow gives them when
``classifier.common_random_numbers`` is on, and then also one seed per replicate, see ``run_seed``).
Two experiments' replicate r then share:

- the model initialisation (the new head; all weights of a model trained from scratch);
- the data order of the images they have in common (unbalanced batches): each epoch every image gets a
  sort key that is a function of (seed, epoch, its id), so common images keep the same relative order;
  images present in one experiment only are interleaved, so the batches themselves differ;
- the augmentation of a common image in an epoch (a function of seed, epoch, its id and, when an image
  occurs several times in an epoch, the occurrence number), whatever its position;
- the validation augmentation draws (``val_augment``) and the global RNG stream.

Not shared: with ``balanced_batches`` the indices are drawn with replacement from a generator stream,
whose draws depend on the set's size and labels, so the order is common only as far as the sets agree;
batch composition and every update after the first differing batch (the training trajectories diverge
as soon as the data do).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..gans.accel import PRECISIONS, autocast, configure_backends, resolve_precision
from ..io import InputError, load_torch, save_torch, seed_from, write_csv
from ..metrics import roc_auc
from ..progress import Progress
from .augment import BatchAugment, augment_config, keyed_uniforms, mix64, normalise_only
from .models import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, create_classifier
from .optim import SGD, ReduceLROnPlateau

DEFAULTS = {
    "model": "timm:test_resnet",
    "model_kwargs": {},
    "pretrained": False,
    "weights_path": None,
    "cache_dir": None,
    "input_size": None,  # None: the model's default input size
    "batch_size": 32,
    "lr": 1e-3,
    "momentum": 0.9,
    "weight_decay": 1e-3,
    "epochs": 100,
    "plateau_patience": 10,
    "plateau_factor": 0.1,
    "min_lr": 1e-5,
    "early_stopping_patience": 22,
    "normalize": "imagenet",  # the paper's text; "model": the model's own mean/std
    "balanced_batches": False,  # the paper's text ("shuffling the data"); the authors' code: True
    "augment": None,  # None: the paper's augmentation (augment.DEFAULT_AUGMENT)
    "val_augment": False,  # the authors' code: True (one random augmentation per image and epoch)
    "eval_batch_size": 256,
    "precision": "auto",  # auto: bfloat16 autocast on CUDA, float32 on CPU; fp32; bf16 (CUDA only)
    "channels_last": True,  # ~40% faster on CPU for small convnets; also good on GPU
    "num_threads": None,
    "device_data_max_bytes": None,  # GPU: keep the whole image set on the device below this (None: 1/4 of free memory)
}

# keys that may change between a run and its resumption without invalidating the checkpoint
_RESUMABLE_KEYS = ("epochs", "num_threads", "eval_batch_size", "device_data_max_bytes", "cache_dir")

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_auc", "lr", "seconds"]
NORMALIZE = ("imagenet", "model")


def run_seed(base_seed: int, experiment: str, replicate: int, common_random_numbers: bool = True) -> int:
    """The seed of one experiment's replicate. With common random numbers it depends on the replicate
    only, so replicate r of every experiment draws the same initialisation and random streams and a
    paired difference between experiments measures their training data, not seed noise; without, it
    depends on (experiment, replicate) as well (independent runs)."""
    if common_random_numbers:
        return seed_from(base_seed, "classifier-common", int(replicate))
    return seed_from(base_seed, "classifier", experiment, int(replicate))


def sample_keys(sample_ids) -> np.ndarray:
    """A 64-bit key per training sample from its id (e.g. the trainset's `image`), and, for an id that
    occurs more than once, its occurrence number, so the copies are distinct samples."""
    seen: dict[str, int] = {}
    out = np.empty(len(sample_ids), dtype=np.uint64)
    for i, name in enumerate(sample_ids):
        name = str(name)
        k = seen.get(name, 0)
        seen[name] = k + 1
        h = hashlib.sha256(f"{name}\x1f{k}".encode()).digest()
        out[i] = int.from_bytes(h[:8], "little")
    return out


def complete_config(cfg: dict, key: str = "classifier") -> dict:
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise InputError(f"{key}: unknown key(s) {unknown}; known: {sorted(DEFAULTS)}")
    out = dict(DEFAULTS)
    out.update({k: v for k, v in cfg.items()})
    out["model_kwargs"] = dict(out["model_kwargs"] or {})
    out["augment"] = augment_config(out["augment"], key=f"{key}.augment")
    if out["normalize"] not in NORMALIZE:
        raise InputError(f"{key}.normalize: one of {', '.join(NORMALIZE)}; got {out['normalize']!r}")
    for k in ("balanced_batches", "val_augment", "pretrained"):
        if not isinstance(out[k], (bool, np.bool_)):
            raise InputError(f"{key}.{k}: expected true or false, got {out[k]!r}")
    for k in ("batch_size", "epochs", "plateau_patience", "early_stopping_patience", "eval_batch_size"):
        low = {"plateau_patience": 0, "batch_size": 2}.get(k, 1)  # batch norm needs two samples
        if isinstance(out[k], bool) or not isinstance(out[k], (int, np.integer)) or out[k] < low:
            raise InputError(f"{key}.{k}: expected an integer >= {low}, got {out[k]!r}")
    if out["precision"] not in PRECISIONS:
        raise InputError(f"{key}.precision: one of {', '.join(PRECISIONS)}; got {out['precision']!r}")
    for k in ("lr", "momentum", "weight_decay", "plateau_factor", "min_lr"):
        if isinstance(out[k], bool) or not isinstance(out[k], (int, float)) or out[k] < 0:
            raise InputError(f"{key}.{k}: expected a number >= 0, got {out[k]!r}")
    return out


def _fingerprint(cfg: dict, seed: int, n_train: int, n_val: int, train_sum: int, val_sum: int,
                 model: torch.nn.Module, code_version: str | None, ids_digest: str | None = None) -> str:
    science = {k: v for k, v in cfg.items() if k not in _RESUMABLE_KEYS}
    # the parameters' names and shapes: a checkpoint of another architecture is never loaded
    shapes = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    blob = json.dumps([science, seed, n_train, n_val, train_sum, val_sum, shapes, code_version, ids_digest],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _checksum(a: np.ndarray, labels: np.ndarray) -> int:
    """A cheap content check (sampled pixels + labels) so a checkpoint is not resumed on other data."""
    flat = a.reshape(a.shape[0], -1)
    cols = np.linspace(0, flat.shape[1] - 1, num=min(64, flat.shape[1])).astype(np.int64)
    return int(np.asarray(flat[:, cols], dtype=np.int64).sum() * 31 + np.asarray(labels, np.int64).sum())


def _shared_tensor(images: np.ndarray) -> torch.Tensor:
    """A tensor on the array's own memory. Image caches are read-only (torch warns about that); nothing
    here writes to the images."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(images))


class ImageStore:
    """uint8 NHWC images, served per batch as tensors on the device.

    CPU: shares the numpy memory (no copy; a memmap is read per batch). CUDA: the whole set moves to
    the GPU once when it is smaller than max_device_bytes (None: a quarter of the free GPU memory);
    otherwise each batch is gathered on the host, pinned and copied.
    """

    def __init__(self, images: np.ndarray, device: torch.device, max_device_bytes: int | None = None):
        self.device = torch.device(device)
        self.n = images.shape[0]
        self.on_device = None
        self.host = images
        if self.device.type == "cpu":
            if not isinstance(images, np.memmap):
                self.on_device = _shared_tensor(images)
        else:
            if max_device_bytes is None:
                free, _ = torch.cuda.mem_get_info(self.device)
                max_device_bytes = free // 4
            if images.nbytes <= max_device_bytes:
                self.on_device = _shared_tensor(images).to(self.device)

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        """The images at `idx`: indices on the device for a set held there (no copy), else on the CPU."""
        if self.on_device is not None:
            return self.on_device[idx.to(self.on_device.device)]
        batch = torch.from_numpy(np.ascontiguousarray(self.host[idx.cpu().numpy()]))
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch

    def slice(self, start: int, stop: int) -> torch.Tensor:
        if self.on_device is not None:
            return self.on_device[start:stop]
        batch = torch.from_numpy(np.array(self.host[start:stop]))
        if self.device.type == "cuda":
            return batch.pin_memory().to(self.device, non_blocking=True)
        return batch


def _check_inputs(images, labels, what: str):
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"{what} images: expected uint8 N x H x W x 3, got "
                         f"{getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}")
    labels = np.asarray(labels)
    if labels.shape != (images.shape[0],):
        raise InputError(f"{what} labels: expected {images.shape[0]} labels, got shape {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise InputError(f"{what} labels: must be 0 or 1")
    return labels.astype(np.int64)


def to_device(t: torch.Tensor, device) -> torch.Tensor:
    """A host tensor on `device`: on CUDA through pinned memory, so the copy does not block the host."""
    device = torch.device(device)
    if device.type != "cuda" or t.device.type == "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def inference_precision(value, device) -> str:
    """"fp32" or "bf16" for prediction with a model trained under `value` (auto, fp32, bf16): bf16 only
    on CUDA. Unlike training, a bf16 model on the CPU falls back to fp32 (its weights are fp32 anyway)."""
    value = value or "fp32"
    if value not in PRECISIONS:
        raise InputError(f"precision: one of {', '.join(PRECISIONS)}; got {value!r}")
    return "bf16" if value != "fp32" and torch.device(device).type == "cuda" else "fp32"


@torch.no_grad()
def evaluate_loss(model, info: ModelInfo, store: ImageStore, labels: np.ndarray, batch_size: int,
                  input_size: int, precision="fp32", channels_last=True, augment: BatchAugment | None = None,
                  params: dict | None = None) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and P(class 1) over a set (model in eval mode): without augmentation, or with
    ``augment`` and its per-image ``params`` (one augmented copy per image). Sums and probabilities stay
    on the device until the end (one host sync per call); `precision` is a resolved one (fp32, bf16)."""
    model.eval()
    device = store.device
    y = to_device(torch.from_numpy(labels), device)
    if params is not None:
        params = {k: to_device(v, device) for k, v in params.items()}
    total = torch.zeros((), dtype=torch.float64, device=device)
    probs = []
    for s in range(0, store.n, batch_size):
        e = min(s + batch_size, store.n)
        if augment is not None:
            x = augment.apply(store.slice(s, e), BatchAugment.index_params(params, slice(s, e)))
        else:
            x = normalise_only(store.slice(s, e), info.mean, info.std, input_size)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(x.device, precision):
            logits = model(x).float()
        # each batch's float32 sum added in float64, as the float sums of the per-batch values were
        total += F.cross_entropy(logits, y[s:e], reduction="sum").double()
        probs.append(torch.softmax(logits, 1)[:, 1])
    if not probs:
        return 0.0, np.zeros(0, dtype=np.float32)
    return total.item() / max(store.n, 1), torch.cat(probs).cpu().numpy()


def _epoch_order(gen: torch.Generator, labels: torch.Tensor, balanced: bool, keys: np.ndarray | None = None,
                 salt: int = 0) -> torch.Tensor:
    """Sample indices of one epoch: a permutation (shuffling), or class-balanced draws with replacement.
    With per-sample ``keys`` the permutation sorts mix64(key ^ salt): the relative order of two samples
    depends only on their keys and the salt (the generator is not used)."""
    n = labels.shape[0]
    if not balanced:
        if keys is not None:
            return torch.from_numpy(np.argsort(mix64(keys ^ np.uint64(salt)), kind="stable"))
        return torch.randperm(n, generator=gen)
    counts = torch.bincount(labels, minlength=2).double()
    w = (1.0 / counts.clamp_min(1))[labels]
    return torch.multinomial(w, n, replacement=True, generator=gen)


def _occurrence(order: np.ndarray) -> np.ndarray:
    """For each position of `order`, how many times its index occurred before it (0 for a permutation)."""
    o = np.asarray(order)
    srt = np.argsort(o, kind="stable")
    so = o[srt]
    start = np.flatnonzero(np.r_[True, so[1:] != so[:-1]])
    first = np.repeat(start, np.diff(np.r_[start, len(o)]))
    occ = np.empty(len(o), dtype=np.uint64)
    occ[srt] = (np.arange(len(o)) - first).astype(np.uint64)
    return occ


def _augment_keys(keys: np.ndarray, order: np.ndarray, salt: int) -> np.ndarray:
    """Per position of an epoch's order: the key of its augmentation draws (sample, occurrence, salt)."""
    with np.errstate(over="ignore"):
        return mix64(keys[order] ^ np.uint64(salt)) + _occurrence(order) * np.uint64(0x9E3779B97F4A7C15)


def _rng_state(device) -> dict:
    st = {"torch": torch.get_rng_state()}
    if torch.device(device).type == "cuda":
        st["cuda"] = torch.cuda.get_rng_state(torch.device(device))
    return st


def _set_rng_state(st: dict, device) -> None:
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(st["cuda"], torch.device(device))


def build_model(cfg: dict, seed: int):
    """Create the configured model with a seeded initialisation (global RNG left untouched); its
    ModelInfo carries the input normalisation chosen by ``normalize``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed_from(seed, "init"))
        model, info = create_classifier(cfg["model"], num_classes=2, pretrained=cfg["pretrained"],
                                        weights_path=cfg["weights_path"], cache_dir=cfg["cache_dir"],
                                        **cfg["model_kwargs"])
    if cfg["input_size"]:
        info.input_size = int(cfg["input_size"])
    info.precision = cfg.get("precision", "auto")  # prediction runs as training did (predict.py)
    if cfg.get("normalize", "imagenet") == "imagenet":
        info.mean, info.std = IMAGENET_MEAN, IMAGENET_STD
    return model, info


def train_classifier(train_images: np.ndarray, train_labels, val_images: np.ndarray, val_labels,
                     cfg: dict, out_dir, seed: int, device, log: logging.Logger | None = None,
                     code_version: str | None = None, sample_ids=None) -> dict:
    """Train a melanoma-vs-benign classifier; resumable per epoch.

    ``sample_ids`` (one per training image, e.g. the trainset's `image` column): draw the data order
    and the augmentation of each image from keys derived from its id, so that runs with the same seed
    on overlapping sets share them for the common images (common random numbers, module docstring).
    None: both come from generator streams.

    Writes out_dir/model.pt (best by validation loss: state dict, info to rebuild, epoch, val_loss and
    the completed config, whose "augment" entry is what predict_proba's TTA should use), history.csv,
    checkpoint.pt (after each epoch; it also holds the best model, so a resumed job restores model.pt and
    history.csv even when they were deleted, as Snakemake does with the outputs of an interrupted job).
    Returns {best_epoch, best_val_loss, epochs_run, seconds, stopped_early}. Calling again after
    completion rewrites the outputs from the checkpoint and returns the summary without training.
    A checkpoint of other settings, data, architecture or `code_version` (the workflow: a hash of the code)
    is not resumed: training starts afresh (a re-run that Snakemake starts because the code changed must
    not just reload the finished run).
    """
    log = log or logging.getLogger("ganaug")
    t_start = time.perf_counter()
    cfg = complete_config(cfg)
    device = torch.device(device)
    out_dir = Path(out_dir)
    y_train = _check_inputs(train_images, train_labels, "train")
    y_val = _check_inputs(val_images, val_labels, "validation")
    precision = resolve_precision(cfg["precision"], device, key="classifier.precision")
    stops_early = cfg["early_stopping_patience"] < cfg["epochs"]
    if stops_early and cfg["plateau_patience"] + 1 >= cfg["early_stopping_patience"]:
        # the schedule lowers the lr after plateau_patience + 1 epochs without improvement
        log.warning("plateau_patience %d, early_stopping_patience %d: the learning rate is never lowered "
                    "before early stopping (the study lowers it after 11 epochs without improvement and stops "
                    "after 22)", cfg["plateau_patience"], cfg["early_stopping_patience"])
    if train_images.shape[0] < 2:
        raise InputError(f"train set has {train_images.shape[0]} images; need at least 2")
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg["num_threads"]:
        torch.set_num_threads(int(cfg["num_threads"]))
    keys = None
    if sample_ids is not None:
        sample_ids = [str(v) for v in sample_ids]
        if len(sample_ids) != len(y_train):
            raise InputError(f"sample_ids: expected {len(y_train)} (one per training image), "
                             f"got {len(sample_ids)}")
        keys = sample_keys(sample_ids)
    model, info = build_model(cfg, seed)
    ids_digest = None if keys is None else hashlib.sha256(keys.tobytes()).hexdigest()[:16]
    fp = _fingerprint(cfg, seed, len(y_train), len(y_val), _checksum(train_images, y_train),
                      _checksum(val_images, y_val), model, code_version, ids_digest)
    input_size = info.input_size
    configure_backends(device)  # cuDNN autotuning: the batch shape is fixed within a run
    model.to(device)
    if cfg["channels_last"]:
        model.to(memory_format=torch.channels_last)
    opt = SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    sched = ReduceLROnPlateau(opt, factor=cfg["plateau_factor"], patience=cfg["plateau_patience"],
                              min_lr=cfg["min_lr"])
    augment = BatchAugment(cfg["augment"], info.mean, info.std, input_size)
    gen_data = torch.Generator().manual_seed(seed_from(seed, "data-order"))
    gen_aug = torch.Generator().manual_seed(seed_from(seed, "augment"))
    torch.manual_seed(seed_from(seed, "global"))

    ckpt_path, model_path, hist_path = out_dir / "checkpoint.pt", out_dir / "model.pt", out_dir / "history.csv"
    state = {"epoch": 0, "best_val_loss": float("inf"), "best_epoch": 0, "bad_epochs": 0,
             "stopped_early": False, "history": []}
    best = None  # what model.pt holds: the best epoch's weights and how to rebuild them
    if ckpt_path.exists():
        ck = load_torch(ckpt_path)
        if ck.get("fingerprint") != fp:
            log.warning("%s: checkpoint is from other settings, data or code; starting afresh", ckpt_path)
        else:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            gen_data.set_state(ck["gen_data"])
            gen_aug.set_state(ck["gen_aug"])
            _set_rng_state(ck["rng"], device)
            state = ck["state"]
            best = ck.get("best")
            log.info("resumed from %s after epoch %d", ckpt_path, state["epoch"])

    def write_outputs():
        if best is not None:
            save_torch(model_path, best)
        write_csv(hist_path, pd.DataFrame(state["history"], columns=HISTORY_COLUMNS))

    def summary():
        return {"best_epoch": state["best_epoch"], "best_val_loss": state["best_val_loss"],
                "epochs_run": state["epoch"], "seconds": time.perf_counter() - t_start,
                "stopped_early": state["stopped_early"]}

    if state["stopped_early"] or state["epoch"] >= cfg["epochs"]:
        log.info("training already complete (%d epochs)", state["epoch"])
        write_outputs()
        return summary()

    train_store = ImageStore(train_images, device, cfg["device_data_max_bytes"])
    val_store = ImageStore(val_images, device, cfg["device_data_max_bytes"])
    labels_cpu = torch.from_numpy(y_train)
    labels_dev = to_device(labels_cpu, device)
    bs = cfg["batch_size"]
    progress = Progress(cfg["epochs"], "epoch", log, start=state["epoch"])

    while state["epoch"] < cfg["epochs"] and not state["stopped_early"]:
        t0 = time.perf_counter()
        epoch = state["epoch"] + 1
        lr = opt.lr
        order = _epoch_order(gen_data, labels_cpu, cfg["balanced_batches"], keys,
                             seed_from(seed, "data-order", epoch))
        # the epoch's batches: only the last can be short, and one of a single sample is skipped (batch
        # norm cannot train on it), so the samples used are a prefix of the order
        n_used = len(order) if len(order) % bs != 1 else len(order) - 1
        if keys is None:  # the same draws as one sample_params per batch: a generator stream concatenates
            params = augment.sample_params(n_used, gen_aug)
        else:
            aug_keys = _augment_keys(keys, order[:n_used].numpy(), seed_from(seed, "augment", epoch))
            params = augment.params_from_uniforms(keyed_uniforms(aug_keys))
        params = {k: to_device(v, device) for k, v in params.items()}
        order_dev = to_device(order, device)
        order_for_store = order_dev if train_store.on_device is not None else order
        model.train()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        for s in range(0, n_used, bs):
            e = min(s + bs, n_used)
            x = augment.apply(train_store.get(order_for_store[s:e]),
                              BatchAugment.index_params(params, slice(s, e)))
            if cfg["channels_last"]:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), labels_dev[order_dev[s:e]])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * (e - s)
            seen += e - s
        train_loss = loss_sum.item() / max(seen, 1)  # the epoch's one host sync of the training loop
        val_aug = val_params = None
        if cfg["val_augment"]:  # one fresh augmentation per image, drawn for the whole set (batch-size free)
            val_aug = augment
            val_params = augment.sample_params(len(y_val), torch.Generator().manual_seed(
                seed_from(seed, "val-augment", epoch)))
        val_loss, val_prob = evaluate_loss(model, info, val_store, y_val, cfg["eval_batch_size"], input_size,
                                           precision, cfg["channels_last"], val_aug, val_params)
        try:
            val_auc = roc_auc(y_val, val_prob)
        except InputError:
            val_auc = float("nan")
        if not np.isfinite(val_loss):
            raise InputError(f"{out_dir}: validation loss is {val_loss} at epoch {epoch} "
                             f"(training diverged; lower classifier.lr?)")
        sched.step(val_loss)
        state["epoch"] = epoch
        if val_loss < state["best_val_loss"]:
            state.update(best_val_loss=val_loss, best_epoch=epoch, bad_epochs=0)
            best = {"state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                    "info": info.to_dict(), "epoch": epoch, "val_loss": val_loss, "config": cfg}
            save_torch(model_path, best)
        else:
            state["bad_epochs"] += 1
        if state["bad_epochs"] >= cfg["early_stopping_patience"]:
            state["stopped_early"] = True
        secs = time.perf_counter() - t0
        state["history"].append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                                 "val_auc": val_auc, "lr": lr, "seconds": secs})
        save_torch(ckpt_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                               "scheduler": sched.state_dict(), "gen_data": gen_data.get_state(),
                               "gen_aug": gen_aug.get_state(), "rng": _rng_state(device),
                               "state": state, "fingerprint": fp, "best": best})
        write_csv(hist_path, pd.DataFrame(state["history"], columns=HISTORY_COLUMNS))
        progress.update(epoch, images=seen, train_loss=train_loss, val_loss=val_loss, val_auc=val_auc, lr=lr)
        if state["stopped_early"]:
            log.info("early stopping after epoch %d (best epoch %d, val loss %.4f)", epoch,
                     state["best_epoch"], state["best_val_loss"])
    if not model_path.exists():  # resumed after model.pt was deleted, and no better epoch came since
        write_outputs()
    return summary()


def load_classifier(model_path, device) -> tuple[torch.nn.Module, ModelInfo]:
    """Rebuild a trained classifier from model.pt (no pretrained download); eval mode on device."""
    ck = load_torch(model_path)
    try:
        info = ModelInfo.from_dict(ck["info"])
        state_dict = ck["state_dict"]
    except (KeyError, TypeError) as e:
        raise InputError(f"{model_path}: not a classifier model file (missing {e})") from e
    with torch.random.fork_rng(devices=[]):
        model, _ = create_classifier(info.name, num_classes=info.num_classes, pretrained=False,
                                     **info.model_kwargs)
    model.load_state_dict(state_dict)
    model.to(device).eval()
    return model, info
