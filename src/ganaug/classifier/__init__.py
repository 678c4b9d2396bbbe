"""Classifiers of the study: model registry, batched augmentation, training loop, predictions.

Importing this package imports no torch: each name below loads its module on first use (PEP 562), so that
the config check can read classifier.names without torch. timm and pretrainedmodels load when a model is
built.
"""

import importlib

_MODULE_OF = {
    "DEFAULTS": "training",
    "DEFAULT_AUGMENT": "augment",
    "BatchAugment": "augment",
    "Classifier": "models",
    "ModelInfo": "models",
    "augment_config": "augment",
    "create_classifier": "models",
    "features": "predict",
    "load_classifier": "training",
    "normalise_only": "augment",
    "per_image_loss": "predict",
    "predict_proba": "predict",
    "train_classifier": "training",
    "tta_params": "predict",
    "validate_model_name": "names",
}
__all__ = list(_MODULE_OF)


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # the literal prefix lets tests/test_envs.py see which modules a name can load
    value = getattr(importlib.import_module(f"ganaug.classifier.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
