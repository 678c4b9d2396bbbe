"""Predictions of a trained classifier: melanoma probability with test-time augmentation (TTA),
per-image loss (the "error" score of pool images), penultimate features.

TTA is batched as (images x replicas): each forward pass holds ``batch_size`` augmented samples made
from ``batch_size // tta`` images (at least one image). The augmentation parameters of every
(image, replica) pair are drawn up front from a generator seeded with ``seed``, so the result does
not depend on the batch size and equals a loop over replicas. They go to the device once per call, the
probabilities stay there until the end (one host sync per call, not per batch).

Precision: ``precision=None`` runs a model as it was trained (ModelInfo.precision, from
classifier.precision: auto or bf16 -> bfloat16 autocast on CUDA; float32 on the CPU); "fp32" forces float32.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..io import InputError
from .augment import BatchAugment, normalise_only
from .models import ModelInfo
from ..gans.accel import autocast
from .training import ImageStore, inference_precision, to_device


def _check_images(images):
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"images: expected uint8 N x H x W x 3, got "
                         f"{getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}")


def _prepare(model, device, channels_last):
    model.eval()
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)


def tta_params(augment: BatchAugment, n_images: int, tta: int, seed: int) -> dict:
    """Augmentation parameters for every (image, replica): tensors of shape (n_images, tta, ...)."""
    gen = torch.Generator().manual_seed(int(seed))
    p = augment.sample_params(n_images * tta, gen)
    return {k: v.view(n_images, tta, *v.shape[1:]) for k, v in p.items()}


def predict_proba(model, info: ModelInfo, images: np.ndarray, device, tta: int = 0, augment_cfg=None,
                  seed: int = 0, batch_size: int = 256, precision: str | None = None,
                  channels_last: bool = True, params: dict | None = None) -> np.ndarray:
    """P(melanoma) = softmax[:, 1] per image; with tta > 0 the mean over tta augmented replicas
    (augment_cfg as in training; None = the study's augmentation). ``params`` (from tta_params) may be
    given to fix the augmentations explicitly."""
    return predict_proba_models([(model, info)], images, device, tta, augment_cfg, seed, batch_size, precision,
                                channels_last, params)[0]


@torch.no_grad()
def predict_proba_models(models: list, images: np.ndarray, device, tta: int, augment_cfg=None, seed: int = 0,
                         batch_size: int = 256, precision: str | None = None, channels_last: bool = True,
                         params: dict | None = None) -> list[np.ndarray]:
    """predict_proba (tta > 0) of several (model, info) pairs on the same images: each batch of augmented
    replicas is made once and goes through every model whose input it fits (the replicates of an
    experiment share mean, std and input size), so the augmentation, a large part of TTA on small
    models, is not repeated per model. Equal to predict_proba of each model alone (tta = 0 too)."""
    if tta <= 0:
        return [probabilities(logits(m, info, images, device, batch_size, precision, channels_last))
                for m, info in models]
    _check_images(images)
    device = torch.device(device)
    groups: dict = {}  # models that can share one augmented batch
    for i, (model, info) in enumerate(models):
        _prepare(model, device, channels_last)
        key = (tuple(info.mean), tuple(info.std), int(info.input_size))
        groups.setdefault(key, []).append(i)
    n = images.shape[0]
    store = ImageStore(images, device)
    per = max(1, batch_size // tta)  # images per forward pass
    results: list = [None] * len(models)
    for (mean, std, size), members in groups.items():
        augment = BatchAugment(augment_cfg, mean, std, size)
        p_all = tta_params(augment, n, tta, seed) if params is None else params
        p_all = {k: to_device(v, device) for k, v in p_all.items()}
        outs = {i: torch.empty(n, dtype=torch.float64, device=device) for i in members}
        precisions = {i: inference_precision(precision or models[i][1].precision, device) for i in members}
        for s in range(0, n, per):
            e = min(s + per, n)
            b = e - s
            x = store.slice(s, e).repeat_interleave(tta, dim=0)  # image-major: rows i*tta.. are image i
            xa = augment.apply(x, {k: v[s:e].reshape(b * tta, *v.shape[2:]) for k, v in p_all.items()})
            if channels_last:
                xa = xa.contiguous(memory_format=torch.channels_last)
            for i in members:
                with autocast(device, precisions[i]):
                    out_b = models[i][0](xa).float()
                outs[i][s:e] = torch.softmax(out_b, 1)[:, 1].double().view(b, tta).mean(1)
        for i in members:
            results[i] = outs[i].cpu().numpy()
    return results


_FLUSH_BATCHES = 32  # outputs move to the host every this many batches (bounded device memory)


def _plain_batches(model, info: ModelInfo, images: np.ndarray, device, batch_size: int, precision,
                   channels_last: bool, head):
    """head(x) on normalised, unaugmented batches; yields float CPU outputs in image order, a few
    batches at a time (one host sync per _FLUSH_BATCHES batches)."""
    _check_images(images)
    device = torch.device(device)
    precision = inference_precision(precision or info.precision, device)
    _prepare(model, device, channels_last)
    store = ImageStore(images, device)
    pending = []
    for s in range(0, images.shape[0], batch_size):
        x = normalise_only(store.slice(s, min(s + batch_size, images.shape[0])), info.mean, info.std,
                           info.input_size)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            pending.append(head(x).float())
        if len(pending) == _FLUSH_BATCHES:
            yield torch.cat(pending).cpu()
            pending = []
    if pending:
        yield torch.cat(pending).cpu()


@torch.no_grad()
def logits(model, info: ModelInfo, images: np.ndarray, device, batch_size: int = 256,
           precision: str | None = None, channels_last: bool = True) -> np.ndarray:
    """Logits (N, classes) as float64, no augmentation."""
    chunks = list(_plain_batches(model, info, images, device, batch_size, precision, channels_last, model))
    if not chunks:
        return np.zeros((0, info.num_classes), dtype=np.float64)
    return torch.cat(chunks).double().numpy()


def probabilities(logit: np.ndarray) -> np.ndarray:
    """P(melanoma) = softmax[:, 1] of logits."""
    return torch.softmax(torch.from_numpy(np.asarray(logit, dtype=np.float64)), 1)[:, 1].numpy()


def cross_entropy(logit: np.ndarray, labels) -> np.ndarray:
    """Cross-entropy of the given label per image (lower = more typical of that class)."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (logit.shape[0],):
        raise InputError(f"labels: expected {logit.shape[0]} labels, got shape {labels.shape}")
    lg = torch.from_numpy(np.asarray(logit, dtype=np.float64))
    return F.cross_entropy(lg, torch.from_numpy(labels), reduction="none").numpy()


def per_image_loss(model, info: ModelInfo, images: np.ndarray, labels, device, batch_size: int = 256,
                   precision: str | None = None, channels_last: bool = True) -> np.ndarray:
    """Cross-entropy of the given label per image, no augmentation (lower = more typical)."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (images.shape[0],):
        raise InputError(f"labels: expected {images.shape[0]} labels, got shape {labels.shape}")
    return cross_entropy(logits(model, info, images, device, batch_size, precision, channels_last), labels)


@torch.no_grad()
def features(model, info: ModelInfo, images: np.ndarray, device, batch_size: int = 256,
             precision: str | None = None, channels_last: bool = True) -> np.ndarray:
    """Penultimate features (N, info.feature_dim) as float32, no augmentation."""
    chunks = list(_plain_batches(model, info, images, device, batch_size, precision, channels_last,
                                 model.features))
    if not chunks:
        return np.zeros((0, info.feature_dim), dtype=np.float32)
    return torch.cat(chunks).numpy().astype(np.float32, copy=False)
