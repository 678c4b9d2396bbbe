"""Frechet distance, KID, and the feature extractors they run on.

FID = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)) on penultimate features of a network.
Two extractors, chosen by the config key ``fid.features`` (see ``fid_settings``):
- ``InceptionFeatures`` (``inception``): the standard FID network, the TF "2015-12-05" Inception graph as
  ported by torch-fidelity (``FeatureExtractorInceptionV3``, registered as ``inception-v3-compat``, the
  same weights pytorch-fid uses), 2048-d pool features of uint8 images with its TF1-style bilinear resize
  to 299 px: FIDs on the scale of published ones; metric ``fid_inception``. Its weights file
  (``fid.inception_weights``: a local copy or a URL fetched once into the cache, checked by sha256) is
  never fetched by the library itself.
- ``DomainFeatures`` (``ancillary``): any classifier with the timm API (``forward_features`` +
  ``forward_head(pre_logits=True)``), e.g. the ancillary skin-lesion classifier, usable offline; metric
  ``fid_ancillary``. Not comparable with published FIDs, nor with the study's 0.3 rule in absolute terms.
With ``fid.second_metric`` the other features give a second FID reported beside the selection metric.
KID (unbiased, cubic polynomial kernel, averaged over random subsets: ``fid.kid_subsets`` of
``fid.kid_subset_size`` rows) is less biased at small sample sizes than FID; its std is the spread over
subsets.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .io import InputError

log = logging.getLogger("ganaug")

FEATURES = {"inception": "fid_inception", "ancillary": "fid_ancillary"}  # fid.features -> metric name
INCEPTION_NAME = "inception-v3-compat"  # torch-fidelity's name of the standard FID Inception network
FID_DEFAULTS = {"n_images": 2048, "tolerance": 0.3, "noise_seeds": 3, "grid_per_class": 8, "features": None,
                "inception_weights": None, "second_metric": True, "cache_dir": "results/cache/weights",
                "kid_subsets": 100, "kid_subset_size": 1000}  # KID: torch-fidelity's defaults
_WEIGHT_KEYS = ("url", "sha256", "local")
_REPLACED = {"inception_url": "fid.inception_weights: {url: ...}",
             "inception_sha256": "fid.inception_weights: {sha256: ...}"}


# --------------------------------------------------------------------------------------------- settings
def fid_settings(fid_cfg: dict | None) -> dict:
    """The config section ``fid`` checked and completed with FID_DEFAULTS; an InputError names the bad key.

    features: ``inception`` | ``ancillary`` (default: inception when inception_weights is set, else
    ancillary). inception_weights: None, a local file path (string), or {url, sha256, local} (url and/or
    local; sha256 optional, 64 hex digits), returned as that dict. second_metric: also compute the FID on
    the other features (ancillary when features is inception; Inception when features is ancillary and
    inception_weights is set). kid_subsets, kid_subset_size: KID's random subsets (see kid); a subset size
    of at least the number of images makes every subset the whole sample, and KID's std undefined."""
    import math
    import re

    cfg = dict(fid_cfg or {})
    for key, new in _REPLACED.items():
        if cfg.get(key) is not None:
            raise InputError(f"fid.{key}: replaced by {new}")
        cfg.pop(key, None)
    unknown = sorted(set(cfg) - set(FID_DEFAULTS))
    if unknown:
        raise InputError(f"fid.{unknown[0]}: unknown key (known: {', '.join(FID_DEFAULTS)})")
    out = dict(FID_DEFAULTS)
    out.update({k: v for k, v in cfg.items() if v is not None})

    w = out["inception_weights"]
    if isinstance(w, (str, Path)):
        w = {"local": str(w)}
    if w is not None:
        if not isinstance(w, dict):
            raise InputError(f"fid.inception_weights: expected a file path or {{url, sha256, local}}, got {w!r}")
        bad = sorted(set(w) - set(_WEIGHT_KEYS))
        if bad:
            raise InputError(f"fid.inception_weights.{bad[0]}: unknown key (known: {', '.join(_WEIGHT_KEYS)})")
        w = {k: (str(w[k]) if w.get(k) not in (None, "") else None) for k in _WEIGHT_KEYS}
        if w["sha256"] is not None:
            if not re.fullmatch(r"[0-9a-fA-F]{64}", w["sha256"].strip()):
                raise InputError(f"fid.inception_weights.sha256: '{w['sha256']}' is not 64 hex digits")
            w["sha256"] = w["sha256"].strip().lower()
        if w["url"] is None and w["local"] is None:
            raise InputError("fid.inception_weights: needs url or local (where to take the weights file from)")
    out["inception_weights"] = w

    features = out["features"] if out["features"] is not None else ("inception" if w else "ancillary")
    if features not in FEATURES:
        raise InputError(f"fid.features: '{features}' is not one of {', '.join(FEATURES)}")
    if features == "inception" and w is None:
        raise InputError("fid.inception_weights: required when fid.features is 'inception' (the standard FID "
                         "network's weights: {url: ..., sha256: ...} or {local: <file>}); or set fid.features: "
                         "ancillary")
    out["features"] = features
    if not isinstance(out["second_metric"], bool):
        raise InputError(f"fid.second_metric: expected true or false, got {out['second_metric']!r}")
    tol = out["tolerance"]
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
        raise InputError(f"fid.tolerance: {tol!r} must be a finite number >= 0")
    for key, least in (("n_images", 2), ("noise_seeds", 1), ("grid_per_class", 1), ("kid_subsets", 2),
                       ("kid_subset_size", 2)):
        v = out[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < least:
            raise InputError(f"fid.{key}: {v!r} must be an integer >= {least}")
    return out


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


def kid_subset_indices(n_real: int, n_fake: int, n_subsets: int, subset_size: int,
                       seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of each KID subset: two n_subsets x m index arrays (real, generated), m = min(subset_size,
    n_real, n_fake), each row drawn without replacement from its set, by one generator seeded with `seed`."""
    m = min(int(subset_size), int(n_real), int(n_fake))
    if m < 2:
        raise InputError(f"kid: need at least 2 samples per set and a subset size >= 2, got {n_real} real, "
                         f"{n_fake} generated, subset size {subset_size}")
    if int(n_subsets) < 1:
        raise InputError(f"kid: n_subsets {n_subsets!r} must be >= 1")
    rng = np.random.default_rng(seed)
    # one independent permutation per row, all rows at once; its first m entries are the subset
    return tuple(rng.permuted(np.tile(np.arange(n, dtype=np.int64), (int(n_subsets), 1)), axis=1)[:, :m]
                 for n in (int(n_real), int(n_fake)))


def kid_per_subset(feat_r, feat_g, idx_r, idx_g, device=None, max_bytes: int = 1 << 28) -> np.ndarray:
    """Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018)
    between feat_r[idx_r[s]] and feat_g[idx_g[s]] for every subset s: a float64 array of len(idx_r).

    The subsets go through batched matrix products, as many at a time as fit in `max_bytes` (float64);
    device: where (default: CUDA when available)."""
    import torch

    x_all = np.asarray(feat_r, dtype=np.float64)
    y_all = np.asarray(feat_g, dtype=np.float64)
    if x_all.ndim != 2 or y_all.ndim != 2 or x_all.shape[1] != y_all.shape[1]:
        raise InputError(f"kid: need two N x D arrays with the same D, got {x_all.shape} and {y_all.shape}")
    idx_r, idx_g = np.asarray(idx_r, dtype=np.int64), np.asarray(idx_g, dtype=np.int64)
    if idx_r.ndim != 2 or idx_r.shape != idx_g.shape or idx_r.shape[1] < 2:
        raise InputError(f"kid: subset indices must be two equal S x m arrays with m >= 2, got {idx_r.shape} "
                         f"and {idx_g.shape}")
    device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    x_all = torch.from_numpy(x_all).to(device)
    y_all = torch.from_numpy(y_all).to(device)
    n_subsets, m = idx_r.shape
    d = x_all.shape[1]

    def kernel_sum(a, b):  # sum over all pairs of each subset: (S,)
        return (a @ b.transpose(1, 2)).div_(d).add_(1.0).pow_(3).sum(dim=(1, 2))

    def kernel_trace(a):  # the i == j terms k(a_i, a_i) that the unbiased estimate leaves out
        return (a * a).sum(dim=2).div_(d).add_(1.0).pow_(3).sum(dim=1)

    per_subset = 8 * m * (2 * d + m)  # two gathered m x d subsets and one m x m kernel matrix at a time
    chunk = max(1, int(max_bytes) // per_subset)
    out = []
    for s in range(0, n_subsets, chunk):  # chunks of subsets bound the memory; each chunk is one batch
        xs = x_all[torch.from_numpy(idx_r[s : s + chunk]).to(device)]
        ys = y_all[torch.from_numpy(idx_g[s : s + chunk]).to(device)]
        within = kernel_sum(xs, xs) - kernel_trace(xs) + kernel_sum(ys, ys) - kernel_trace(ys)
        out.append(within / (m * (m - 1)) - 2.0 * kernel_sum(xs, ys) / (m * m))
    return torch.cat(out).cpu().numpy()


def kid(feat_r, feat_g, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        device=None) -> tuple[float, float | None]:
    """Kernel Inception Distance as Binkowski et al. (2018) and torch-fidelity compute it: the unbiased MMD^2
    (kid_per_subset) on `n_subsets` random subsets of m = min(subset_size, N_r, N_g) rows of each set
    (kid_subset_indices, seeded). Returns (mean, std over subsets; population std as torch-fidelity).

    The std is None where it measures nothing: one subset, or subsets that are the whole of both sets
    (every subset is then the same set; the mean is the full-sample estimate, computed once, and a warning
    says to take a subset size below the number of samples)."""
    n_r, n_g = len(feat_r), len(feat_g)
    idx_r, idx_g = kid_subset_indices(n_r, n_g, n_subsets, subset_size, seed)
    m = idx_r.shape[1]
    if m == n_r == n_g:
        log.warning("kid: a subset of %d is the whole of both sets (%d real, %d generated), so every subset "
                    "is the same and kid_std is not defined; a subset size below the number of samples "
                    "(config fid.kid_subset_size) gives the spread", m, n_r, n_g)
        idx_r, idx_g = idx_r[:1], idx_g[:1]
    vals = kid_per_subset(feat_r, feat_g, idx_r, idx_g, device=device)
    return float(vals.mean()), (float(vals.std()) if len(vals) > 1 else None)


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


class InceptionFeatures:
    """The standard FID network: torch-fidelity's ``FeatureExtractorInceptionV3`` (``inception-v3-compat``,
    feature ``2048``) with the weights file at `weights_path` (torch-fidelity's / pytorch-fid's port of the
    TF "2015-12-05" graph). It takes uint8 images and does the TF1-style bilinear resize to 299 px and the
    (x - 128) / 128 scaling itself, as the original FID code does."""

    name = INCEPTION_NAME
    metric = FEATURES["inception"]

    def __init__(self, weights_path, feature: str = "2048"):
        """feature: the layer, "2048" (the pool features of FID); torch-fidelity's smaller ones ("64", "192",
        "768") only make its covariances cheap in tests, and are named so."""
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        from .io import load_torch

        self.weights_path = Path(weights_path)
        if not self.weights_path.is_file():
            raise InputError(f"{self.weights_path}: Inception weights file not found")
        # read it first as plain tensors (weights_only): the library unpickles it without that restriction
        state = load_torch(self.weights_path)
        if not isinstance(state, dict):
            raise InputError(f"{self.weights_path}: expected a state dict of torch-fidelity's InceptionV3")
        del state
        if feature not in ("64", "192", "768", "2048"):
            raise InputError(f"InceptionFeatures: feature '{feature}' is not one of 64, 192, 768, 2048")
        self.feature = feature
        if feature != "2048":
            self.name = f"{INCEPTION_NAME}:{feature}"
        try:
            self.net = FeatureExtractorInceptionV3(INCEPTION_NAME, [feature],
                                                   feature_extractor_weights_path=str(self.weights_path))
        except (RuntimeError, ValueError, KeyError) as e:
            raise InputError(f"{self.weights_path}: not the FID Inception weights of torch-fidelity "
                             f"({str(e).splitlines()[0] if str(e) else e.__class__.__name__})") from e
        self._device = None

    def features(self, images: np.ndarray, batch_size: int = 64, device=None) -> np.ndarray:
        import torch

        _check_images(images)
        device = torch.device(device) if device is not None else torch.device("cpu")
        if self._device != device:
            self.net.to(device)
            self._device = device
        self.net.eval()
        out = []
        with torch.inference_mode():
            for s in range(0, len(images), batch_size):
                b = torch.from_numpy(np.ascontiguousarray(images[s : s + batch_size])).to(device)
                (f,) = self.net(b.permute(0, 3, 1, 2).contiguous())
                out.append(f.double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, int(self.feature)))


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


def inception_weights_file(fid_cfg: dict) -> Path:
    """The verified local path of the Inception weights of ``fid_settings(fid_cfg)["inception_weights"]``:
    `local` (checked against `sha256`, or else against the hash prefix in the url's or its own file name),
    else `url` fetched once into ``cache_dir`` (sha256 checked; without one, the name's hash prefix is
    checked and the full checksum recorded beside the file for later uses). Errors name the config key."""
    from .weights import resolve_weights

    cfg = fid_settings(fid_cfg)
    w = cfg["inception_weights"]
    if w is None:
        raise InputError("fid.inception_weights: not set (the Inception features need the weights file)")
    key = "fid.inception_weights." + ("local" if w["local"] else "url")
    try:
        return resolve_weights(path=w["local"], url=w["url"], sha256=w["sha256"], cache_dir=cfg["cache_dir"],
                               name_hash=True)
    except InputError as e:
        from .weights import ChecksumError

        offline = not w["local"] and not isinstance(e, ChecksumError)
        hint = "; without network, download it elsewhere and set fid.inception_weights.local to the file"
        raise e.__class__(f"{key}: {e}{hint if offline else ''}") from e


def inception_weights_record(fid_cfg: dict) -> dict:
    """inception_weights_file, and what it found: {path, sha256, url, local, extractor}. The Snakemake rule
    fid_weights keeps it, so that the download happens once, before the FID jobs run in parallel."""
    from .downloads import recorded_sha256
    from .io import sha256_file

    cfg = fid_settings(fid_cfg)
    path = inception_weights_file(cfg)
    w = cfg["inception_weights"]
    digest = w["sha256"] or (None if w["local"] else recorded_sha256(path)) or sha256_file(path)
    return {"path": str(path), "sha256": digest, "url": w["url"], "local": w["local"],
            "extractor": INCEPTION_NAME}


def _domain_extractor(domain_model_loader):
    if domain_model_loader is None:
        raise InputError("fid: the ancillary features need the ancillary classifier, and none was given")
    obj = domain_model_loader()
    if isinstance(obj, tuple) and len(obj) == 2:
        model, info = obj
        name = getattr(info, "name", "model")
        return DomainFeatures(model, info.mean, info.std, info.input_size,
                              name if str(name).startswith("ancillary:") else f"ancillary:{name}")
    if not (hasattr(obj, "features") and hasattr(obj, "name")):
        raise InputError("fid: the domain model loader must return a FeatureExtractor or (model, info)")
    return obj


def make_extractors(fid_cfg: dict, domain_model_loader=None) -> list:
    """The FID feature extractors of the config section ``fid``: first the one selection uses
    (``fid.features``), then, with ``fid.second_metric``, the other one where it is available (the
    ancillary classifier's beside Inception; Inception beside the ancillary one when its weights are set).

    domain_model_loader() returns a FeatureExtractor or a (model, info) pair (info with mean, std,
    input_size, name); it is called only when the ancillary features are used. Each extractor's ``metric``
    says which it is (fid_inception or fid_ancillary). Missing or unverifiable Inception weights are an
    error naming the key; there is no silent switch to other features (FIDs would not compare).
    """
    cfg = fid_settings(fid_cfg)
    order = [cfg["features"]]
    if cfg["second_metric"]:
        other = "ancillary" if cfg["features"] == "inception" else "inception"
        if other == "ancillary" and domain_model_loader is not None or \
                other == "inception" and cfg["inception_weights"] is not None:
            order.append(other)
    return [InceptionFeatures(inception_weights_file(cfg)) if f == "inception" else
            _domain_extractor(domain_model_loader) for f in order]


def make_extractor(fid_cfg: dict, domain_model_loader=None):
    """The extractor checkpoint selection uses (``fid.features``); see make_extractors."""
    cfg = dict(fid_settings(fid_cfg), second_metric=False)
    return make_extractors(cfg, domain_model_loader)[0]


def compute_stats(extractor, images, batch_size: int = 64, device=None):
    """(mu, sigma) of an extractor's features of uint8 NHWC images."""
    return feature_stats(extractor.features(images, batch_size=batch_size, device=device))
