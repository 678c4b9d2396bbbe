"""Frechet distance, KID, and the feature extractors they run on.

FID = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)) on penultimate features of a network.
Two extractors:
- ``InceptionFeatures``: torchvision's Inception-v3 with its ImageNet weights from a local file (the
  weights are never downloaded here; see ganaug.weights), 2048-d pool features; metric ``fid_inception``.
  Note: this is torchvision's port, not the TF "2015-12-05" graph of the original FID, so absolute values
  are not comparable with published FIDs (relative comparisons within the study are what selection needs).
- ``DomainFeatures``: any classifier with the timm API (``forward_features`` + ``forward_head(pre_logits=
  True)``), e.g. the ancillary skin-lesion classifier, used when no Inception weights are available;
  metric ``fid_ancillary``.
KID (unbiased, cubic polynomial kernel) is less biased at small sample sizes than FID.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .io import InputError

log = logging.getLogger("ganaug")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------------------------- statistics
def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean vector and covariance matrix (unbiased, float64) of an N x D feature array."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise InputError(f"feature_stats: need an N x D array with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between two Gaussians N(mu1, sigma1), N(mu2, sigma2).

    The matrix square root of sigma1 @ sigma2 comes from scipy.linalg.sqrtm; when it is not finite
    (singular product) eps * I is added to both covariances; tiny imaginary parts from numerical error
    are discarded (a large one raises ValueError).
    """
    from scipy import linalg

    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise InputError(f"frechet_distance: shape mismatch mu {mu1.shape}/{mu2.shape}, "
                         f"sigma {s1.shape}/{s2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products are expected with few samples; handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            log.warning("frechet_distance: singular covariance product; adding %g to the diagonals", eps)
            offset = np.eye(len(mu1)) * eps
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"frechet_distance: imaginary component {np.abs(covmean.imag).max():.3g} "
                             f"in the covariance square root")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid_from_features(feat_r, feat_g) -> float:
    mu1, s1 = feature_stats(feat_r)
    mu2, s2 = feature_stats(feat_g)
    return frechet_distance(mu1, s1, mu2, s2)


def kid(feat_r, feat_g, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, averaged over
    `n_subsets` random subsets of min(subset_size, N_r, N_g) rows of each set (without replacement
    within a subset). Returns (mean, std) over subsets."""
    x_all = np.asarray(feat_r, dtype=np.float64)
    y_all = np.asarray(feat_g, dtype=np.float64)
    if x_all.ndim != 2 or y_all.ndim != 2 or x_all.shape[1] != y_all.shape[1]:
        raise InputError(f"kid: need two N x D arrays with the same D, got {x_all.shape} and {y_all.shape}")
    d = x_all.shape[1]
    m = min(int(subset_size), len(x_all), len(y_all))
    if m < 2:
        raise InputError(f"kid: need at least 2 samples per set, got {len(x_all)} and {len(y_all)}")
    rng = np.random.default_rng(seed)
    vals = np.empty(int(n_subsets))
    for i in range(int(n_subsets)):
        x = x_all[rng.choice(len(x_all), m, replace=False)]
        y = y_all[rng.choice(len(y_all), m, replace=False)]
        kxx = (x @ x.T / d + 1.0) ** 3
        kyy = (y @ y.T / d + 1.0) ** 3
        kxy = (x @ y.T / d + 1.0) ** 3
        vals[i] = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                   + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                   - 2.0 * kxy.mean())
    return float(vals.mean()), float(vals.std())


def save_stats(path, mu, sigma) -> None:
    """Store feature statistics (.npz, atomic) so real-image statistics are computed once."""
    from .io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, mu=mu, sigma=sigma)


def load_stats(path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as z:
            return z["mu"], z["sigma"]
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{path}: cannot read feature statistics ({e})") from e


# --------------------------------------------------------------------------------------------- extractors
@runtime_checkable
class FeatureExtractor(Protocol):
    name: str
    metric: str

    def features(self, images: np.ndarray, batch_size: int = 64, device=None) -> np.ndarray: ...


def _check_images(images) -> None:
    if len(getattr(images, "shape", ())) != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise InputError(f"feature extraction: expected uint8 images N x H x W x 3, got "
                         f"{getattr(images, 'dtype', type(images))} {tuple(getattr(images, 'shape', ()))}")


class _TorchExtractor:
    """Shared batching: uint8 NHWC numpy -> device float NCHW in [0,1] -> resize -> normalise -> net."""

    name = "?"
    metric = "?"

    def __init__(self, mean, std, input_size):
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        size = input_size if not isinstance(input_size, int) else (input_size, input_size)
        self.input_size = tuple(int(v) for v in size[-2:])  # timm-style (3, H, W) is accepted too
        self._device = None

    def _embed(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def _module(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def features(self, images: np.ndarray, batch_size: int = 64, device=None) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        _check_images(images)
        device = torch.device(device) if device is not None else torch.device("cpu")
        net = self._module()
        if self._device != device:
            net.to(device)
            self._device = device
        net.eval()
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        out = []
        with torch.inference_mode():
            for s in range(0, len(images), batch_size):
                b = torch.from_numpy(np.ascontiguousarray(images[s : s + batch_size])).to(device)
                x = b.permute(0, 3, 1, 2).float().div_(255.0)
                if tuple(x.shape[-2:]) != self.input_size:
                    x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False,
                                      antialias=True)
                x = (x - mean) / std
                f = self._embed(x)
                out.append(f.reshape(len(f), -1).double().cpu().numpy())
        if not out:
            return np.zeros((0, 0))
        return np.concatenate(out)


class InceptionFeatures(_TorchExtractor):
    """torchvision Inception-v3 (ImageNet weights from a local state-dict file): 2048-d pool features.

    Input: bilinear (antialiased) resize to 299, ImageNet mean/std normalisation, and torchvision's
    ``transform_input`` as used with its pretrained weights.
    """

    name = "inception_v3_tv"
    metric = "fid_inception"

    def __init__(self, weights_path):
        import torch
        from torchvision.models import inception_v3

        from .io import load_torch

        super().__init__(IMAGENET_MEAN, IMAGENET_STD, 299)
        self.weights_path = Path(weights_path)
        if not self.weights_path.is_file():
            raise InputError(f"{self.weights_path}: Inception weights file not found")
        net = inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=True)
        state = load_torch(self.weights_path)
        if not isinstance(state, dict):
            raise InputError(f"{self.weights_path}: expected a state dict of torchvision inception_v3")
        state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise InputError(f"{self.weights_path}: not torchvision inception_v3 weights ({e})") from e
        net.fc = torch.nn.Identity()
        self.net = net.eval()

    def _module(self):
        return self.net

    def _embed(self, x):
        return self.net(x)


class DomainFeatures(_TorchExtractor):
    """Penultimate features of a classifier with the timm API (forward_features + forward_head(
    pre_logits=True)), or of a model whose ``features(x)`` method returns N x D."""

    metric = "fid_ancillary"

    def __init__(self, model, mean, std, input_size, name: str):
        super().__init__(mean, std, input_size)
        self.model = model
        self.name = name
        has_timm = callable(getattr(model, "forward_features", None)) and callable(
            getattr(model, "forward_head", None))
        feats = getattr(model, "features", None)
        import torch

        if has_timm:
            self._mode = "timm"
        elif callable(feats) and not isinstance(feats, torch.nn.Module):
            self._mode = "features"
        else:
            raise InputError(f"feature extractor '{name}': the model has neither forward_features/"
                             f"forward_head (timm API) nor a features(x) method")

    def _module(self):
        return self.model

    def _embed(self, x):
        if self._mode == "timm":
            return self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return self.model.features(x)


def make_extractor(fid_cfg: dict, domain_model_loader=None):
    """Choose the FID feature extractor from the config section ``fid``.

    fid_cfg keys: inception_weights (local path or None), inception_url (or None), inception_sha256 (or
    None), cache_dir. Inception is used when its weights are a local file or can be fetched into the cache;
    otherwise (no weights configured, or the download fails for network reasons) the domain extractor
    from ``domain_model_loader()`` is used. The loader returns a FeatureExtractor or a (model, info) pair
    (info with mean, std, input_size, name). The extractor's ``metric`` says which: fid_inception or
    fid_ancillary. A configured local file that is missing, or a checksum mismatch, is an error.
    """
    from .weights import ChecksumError, DownloadError, fetch, resolve_weights

    fid_cfg = dict(fid_cfg or {})
    path = fid_cfg.get("inception_weights")
    url = fid_cfg.get("inception_url")
    sha = fid_cfg.get("inception_sha256")
    cache_dir = fid_cfg.get("cache_dir") or "results/cache/weights"
    if path:
        try:
            p = resolve_weights(path=path, sha256=sha)
        except InputError as e:
            raise InputError(f"fid.inception_weights: {e}") from e
        return InceptionFeatures(p)
    if url:
        try:
            return InceptionFeatures(fetch(url, sha, cache_dir))
        except ChecksumError:
            raise
        except DownloadError as e:
            log.warning("FID: Inception weights unavailable (%s); using the domain feature extractor", e)
    if domain_model_loader is None:
        raise InputError("fid: no Inception weights (fid.inception_weights or fid.inception_url) and no "
                         "ancillary classifier to compute features with")
    obj = domain_model_loader()
    if isinstance(obj, tuple) and len(obj) == 2:
        model, info = obj
        name = getattr(info, "name", "model")
        return DomainFeatures(model, info.mean, info.std, info.input_size,
                              name if str(name).startswith("ancillary:") else f"ancillary:{name}")
    if not (hasattr(obj, "features") and hasattr(obj, "name")):
        raise InputError("fid: the domain model loader must return a FeatureExtractor or (model, info)")
    return obj


def compute_stats(extractor, images, batch_size: int = 64, device=None):
    """(mu, sigma) of an extractor's features of uint8 NHWC images."""
    return feature_stats(extractor.features(images, batch_size=batch_size, device=device))
