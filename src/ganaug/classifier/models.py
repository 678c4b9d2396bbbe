"""Classifier registry: ``"timm:<model>"``, ``"pretrainedmodels:<model>"`` and ``"ganaug:<model>"`` (the
compact networks built in, ``classifier.resnet``) behind one small API.

Every model is wrapped in :class:`Classifier`, which gives a uniform interface:
``forward(x) -> logits (N, num_classes)`` and ``features(x) -> penultimate features (N, D)``.
Inputs are float NCHW tensors already normalised with ``ModelInfo.mean/std`` (see classifier.augment).

timm and pretrainedmodels are imported lazily (importing timm costs ~2 s of CPU), so importing this
module is cheap. A config's names are checked by classifier.names, which imports no torch at all.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..io import InputError
# the names a config may give, checked without torch (re-exported: importers of this module use them)
from .names import (  # noqa: F401
    CONFIG_KEY,
    HOW_TO_LIST,
    PREFIXES,
    PRETRAINEDMODELS_NAMES,
    parse_model_name,
    validate_model_name,
)
from .resnet import MODELS as NATIVE_MODELS

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # timm's defaults too


@dataclass
class ModelInfo:
    """What is needed to feed a model: normalisation (for inputs scaled to [0, 1], RGB), input size."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    name: str
    feature_dim: int
    num_classes: int = 2
    model_kwargs: dict = field(default_factory=dict)
    # the classifier.precision it was trained under (auto, fp32, bf16); prediction runs the same way.
    # Model files from before this field: fp32
    precision: str = "fp32"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelInfo:
        d = dict(d)
        d["mean"] = tuple(float(v) for v in d["mean"])
        d["std"] = tuple(float(v) for v in d["std"])
        return cls(**d)


class Classifier(nn.Module):
    """Uniform wrapper: ``features(x)`` -> (N, D) penultimate features, ``forward(x)`` -> logits.

    kind "timm": ``net`` is a timm model (forward_features / forward_head(pre_logits=True)).
    kind "pretrainedmodels": ``net`` is a pretrainedmodels model whose ``last_linear`` was replaced
    by Identity, so ``net(x)`` returns pooled features, and ``head`` is the new last linear layer.
    kind "ganaug": the same, for a network of ``classifier.resnet`` (``net(x)`` returns pooled features).
    ``bgr`` flips channels for models trained on BGR inputs (mean/std in ModelInfo are in RGB order).
    """

    def __init__(self, net: nn.Module, kind: str, head: nn.Module | None = None, bgr: bool = False):
        super().__init__()
        self.net = net
        self.kind = kind
        self.head = head
        self.bgr = bgr

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        if self.kind == "timm":
            return self.net.forward_head(self.net.forward_features(x), pre_logits=True)
        return torch.flatten(self.net(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "timm":
            return self.net(x.flip(1) if self.bgr else x)
        return self.head(self.features(x))


def _tuplify(v):
    """YAML gives lists; timm constructors often expect tuples (e.g. ResNet channels)."""
    if isinstance(v, list):
        return tuple(_tuplify(x) for x in v)
    return v


def create_classifier(name: str, num_classes: int = 2, pretrained: bool = False, weights_path=None,
                      cache_dir=None, **kwargs) -> tuple[Classifier, ModelInfo]:
    """Build a classifier by registry name; returns (model, ModelInfo).

    ``timm:<model>``: timm.create_model(model, num_classes, pretrained, **kwargs); with ``weights_path``
    the pretrained weights come from that local file (timm ``pretrained_cfg_overlay=dict(file=...)``);
    pretrained without a path lets timm use its own hub cache/download.
    ``pretrainedmodels:<model>``: built with pretrained=None; when ``pretrained`` the ImageNet weights
    are loaded from ``weights_path`` or fetched (with cache and checksum) by ``ganaug.weights.fetch``
    from the package's own URL into ``cache_dir``; then the last linear layer is replaced by a new one
    with ``num_classes`` outputs. Fixed-size average pools are made adaptive so any input size works
    (identical result at the native size).
    """
    prefix, model = parse_model_name(name)
    kwargs = {k: _tuplify(v) for k, v in kwargs.items()}
    if prefix == "timm":
        return _create_timm(name, model, num_classes, pretrained, weights_path, kwargs)
    if prefix == "ganaug":
        return _create_native(name, model, num_classes, pretrained, kwargs)
    return _create_pretrainedmodels(name, model, num_classes, pretrained, weights_path, cache_dir, kwargs)


def _create_timm(name, model, num_classes, pretrained, weights_path, kwargs):
    import timm

    if not timm.is_model(model):
        raise InputError(f"{CONFIG_KEY}: unknown timm model '{model}'; {HOW_TO_LIST}")
    extra = {}
    if pretrained and weights_path is not None:
        if not Path(weights_path).is_file():
            raise InputError(f"classifier.weights_path: {weights_path}: weights file not found")
        extra["pretrained_cfg_overlay"] = {"file": str(weights_path)}
    try:
        net = timm.create_model(model, num_classes=num_classes, pretrained=bool(pretrained), **extra, **kwargs)
    except TypeError as e:
        raise InputError(f"classifier.model_kwargs: invalid arguments for timm model '{model}': {e}") from e
    cfg = net.pretrained_cfg
    feature_dim = int(getattr(net, "head_hidden_size", None) or net.num_features)
    info = ModelInfo(mean=tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN)),
                     std=tuple(float(v) for v in cfg.get("std", IMAGENET_STD)),
                     input_size=int(cfg.get("input_size", (3, 224, 224))[-1]), name=name,
                     feature_dim=feature_dim, num_classes=num_classes, model_kwargs=dict(kwargs))
    return Classifier(net, "timm"), info


def _create_native(name, model, num_classes, pretrained, kwargs):
    if model not in NATIVE_MODELS:
        raise InputError(f"{CONFIG_KEY}: unknown ganaug model '{model}'; {HOW_TO_LIST}")
    if pretrained:
        raise InputError(f"classifier.pretrained: '{name}' has no pretrained weights (it is trained from "
                         f"scratch); set pretrained: false or choose a timm or pretrainedmodels model")
    try:
        net = NATIVE_MODELS[model](**kwargs)
    except TypeError as e:
        raise InputError(f"classifier.model_kwargs: invalid arguments for ganaug model '{model}': {e}") from e
    head = nn.Linear(net.num_features, num_classes)
    # ImageNet statistics, as timm's defaults: the inputs are natural RGB images either way
    info = ModelInfo(mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size=224, name=name,
                     feature_dim=int(net.num_features), num_classes=num_classes, model_kwargs=dict(kwargs))
    return Classifier(net, "ganaug", head=head), info


@contextlib.contextmanager
def _local_model_zoo(url: str, path: Path):
    """pretrainedmodels loads weights with torch.utils.model_zoo.load_url(url); serve it from a local
    file instead (so each model's own loading code -- key renames, 1001->1000 classes -- is reused)."""
    from torch.utils import model_zoo

    original = model_zoo.load_url

    def load_url(u, *args, **kw):
        if u != url:
            raise InputError(f"pretrainedmodels asked for weights {u}, expected {url}")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise InputError(f"{path}: cannot load model weights: {e}") from e

    model_zoo.load_url = load_url
    try:
        yield
    finally:
        model_zoo.load_url = original


def _create_pretrainedmodels(name, model, num_classes, pretrained, weights_path, cache_dir, kwargs):
    if model not in PRETRAINEDMODELS_NAMES:
        raise InputError(f"{CONFIG_KEY}: unknown pretrainedmodels model '{model}'; {HOW_TO_LIST}")
    if kwargs:
        raise InputError(f"classifier.model_kwargs: pretrainedmodels models take no extra arguments, "
                         f"got {sorted(kwargs)}")
    import pretrainedmodels

    settings_all = pretrainedmodels.pretrained_settings[model]
    key = "imagenet" if "imagenet" in settings_all else next(iter(settings_all))
    settings = settings_all[key]
    builder = getattr(pretrainedmodels, model)
    with warnings.catch_warnings():  # pretrainedmodels calls torchvision's deprecated pretrained=
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        net = _build_pretrainedmodels(builder, key, settings, pretrained, weights_path, cache_dir)
    old = net.last_linear
    in_features = old.in_features if isinstance(old, nn.Linear) else old.in_channels
    head = nn.Linear(in_features, num_classes)
    net.last_linear = nn.Identity()
    for attr in ("avg_pool", "avgpool", "avgpool_1a", "avg_pool2d"):
        if isinstance(getattr(net, attr, None), nn.AvgPool2d):
            setattr(net, attr, nn.AdaptiveAvgPool2d(1))
    scale = 255.0 if list(settings.get("input_range", [0, 1]))[1] == 255 else 1.0
    bgr = settings.get("input_space", "RGB") == "BGR"
    mean = [float(v) / scale for v in settings["mean"]]
    std = [float(v) / scale for v in settings["std"]]
    if bgr:  # settings are in the model's channel order; ModelInfo is in RGB order
        mean, std = mean[::-1], std[::-1]
    info = ModelInfo(mean=tuple(mean), std=tuple(std), input_size=int(settings["input_size"][-1]),
                     name=name, feature_dim=int(in_features), num_classes=num_classes, model_kwargs={})
    return Classifier(net, "pretrainedmodels", head=head, bgr=bgr), info


def _build_pretrainedmodels(builder, key, settings, pretrained, weights_path, cache_dir):
    if not pretrained:
        return builder(num_classes=1000, pretrained=None)
    if weights_path is None:
        from ..weights import fetch  # lazy: written by another module owner

        weights_path = fetch(settings["url"], None, cache_dir or Path.home() / ".cache" / "ganaug")
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise InputError(f"classifier.weights_path: {weights_path}: weights file not found")
    with _local_model_zoo(settings["url"], weights_path):
        return builder(num_classes=settings["num_classes"], pretrained=key)
