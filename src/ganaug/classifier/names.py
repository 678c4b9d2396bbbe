"""The classifier names a config may give (``classifier.model``, ``ancillary.model``):
``"timm:<model>"``, ``"pretrainedmodels:<model>"`` and ``"ganaug:<model>"``, checked without importing torch,
timm or pretrainedmodels. The workflow checks a config in every Snakemake invocation (ganaug.config_check),
where importing torch and timm would cost about 4 s of CPU; the models themselves are built by
classifier.models.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import re
from pathlib import Path

from ..io import InputError

CONFIG_KEY = "classifier.model"
PREFIXES = ("timm", "pretrainedmodels", "ganaug")

# The model names of pretrainedmodels 0.7.4 (the last release; the package is frozen). Kept here so a
# config can be validated without importing the package (which imports torchvision, ~2 s).
PRETRAINEDMODELS_NAMES = (
    "fbresnet152", "bninception", "resnext101_32x4d", "resnext101_64x4d", "inceptionv4",
    "inceptionresnetv2", "alexnet", "densenet121", "densenet169", "densenet201", "densenet161",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "inceptionv3", "squeezenet1_0",
    "squeezenet1_1", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19_bn", "vgg19",
    "nasnetamobile", "nasnetalarge", "dpn68", "dpn68b", "dpn92", "dpn98", "dpn131", "dpn107", "xception",
    "senet154", "se_resnet50", "se_resnet101", "se_resnet152", "se_resnext50_32x4d",
    "se_resnext101_32x4d", "cafferesnet101", "pnasnet5large", "polynet",
)
# the networks of classifier.resnet (its MODELS, in that order; a test keeps the two the same)
NATIVE_NAMES = ("resnet",)

HOW_TO_LIST = (
    "use 'timm:<name>' (list names with: python -c \"import timm; print(timm.list_models())\") or "
    "'pretrainedmodels:<name>' (one of: " + ", ".join(PRETRAINEDMODELS_NAMES) + ") or "
    "'ganaug:<name>' (one of: " + ", ".join(NATIVE_NAMES) + ")"
)


def parse_model_name(name, key: str = CONFIG_KEY) -> tuple[str, str]:
    """'timm:resnet10t' -> ('timm', 'resnet10t'); a malformed name raises InputError naming `key`."""
    if not isinstance(name, str) or ":" not in name:
        raise InputError(f"{key}: '{name}' is not of the form '<library>:<model>'; {HOW_TO_LIST}")
    prefix, model = name.split(":", 1)
    if prefix not in PREFIXES or not model:
        raise InputError(
            f"{key}: unknown model library '{prefix}' in '{name}' (known: {', '.join(PREFIXES)}); "
            f"{HOW_TO_LIST}")
    return prefix, model


def validate_model_name(name, check_exists: bool = True, key: str = CONFIG_KEY) -> str:
    """Check a config's model name without building the model; returns it.

    pretrainedmodels and ganaug names are checked against static lists, timm names (when ``check_exists``)
    against the installed timm's registry as its source declares it (timm_is_model: timm is imported only to
    confirm a name not found there); with ``check_exists=False`` only the form is checked.
    """
    prefix, model = parse_model_name(name, key)
    if prefix == "pretrainedmodels":
        if model not in PRETRAINEDMODELS_NAMES:
            raise InputError(f"{key}: unknown pretrainedmodels model '{model}'; {HOW_TO_LIST}")
    elif prefix == "ganaug":
        if model not in NATIVE_NAMES:
            raise InputError(f"{key}: unknown ganaug model '{model}'; {HOW_TO_LIST}")
    elif check_exists and not timm_is_model(model):
        raise InputError(f"{key}: unknown timm model '{model}'; {HOW_TO_LIST}")
    return name


def timm_is_model(model: str) -> bool:
    """``timm.is_model(model)`` (a pretrained tag after '.' ignored): a name found in timm's source is
    accepted without importing timm; any other is asked of timm itself (importing it, about 4 s with
    torch), so a timm laid out otherwise than timm_model_names reads never has a valid name refused."""
    names = timm_model_names()
    if names is not None and model.split(".", 1)[0] in names:
        return True
    import timm

    return timm.is_model(model)


# timm registers a model by decorating its entry point, and an old name by a deprecation map
_REGISTERED = re.compile(r"^@register_model[ \t]*\n(?:@.*\n)*def[ \t]+(\w+)", re.M)
_DEPRECATED = re.compile(r"^register_model_deprecations\(\s*__name__\s*,\s*(\{.*?\})\s*\)", re.M | re.S)


@functools.lru_cache(maxsize=1)
def timm_model_names() -> frozenset[str] | None:
    """The names the installed timm's registry accepts (timm.list_models() and the deprecated names that
    timm.is_model accepts too), read from the source files of timm/models without importing it (or torch):
    about 0.1 s instead of 4. None when timm is not installed or no name is found that way."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return None
    names = set()
    for path in sorted(Path(spec.submodule_search_locations[0], "models").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "register_model" not in text:
            continue
        names.update(_REGISTERED.findall(text))
        for mapping in _DEPRECATED.findall(text):
            try:
                names.update(ast.literal_eval(mapping))
            except (ValueError, SyntaxError):
                return None
    return frozenset(names) or None
