"""Classifiers of the study: model registry, batched augmentation, training loop, predictions.

Importing this package does not import timm or pretrainedmodels (they load when a model is built).
"""

from .augment import DEFAULT_AUGMENT, BatchAugment, augment_config, normalise_only
from .models import Classifier, ModelInfo, create_classifier, validate_model_name
from .predict import features, per_image_loss, predict_proba, tta_params
from .training import DEFAULTS, load_classifier, train_classifier

__all__ = [
    "DEFAULTS",
    "DEFAULT_AUGMENT",
    "BatchAugment",
    "Classifier",
    "ModelInfo",
    "augment_config",
    "create_classifier",
    "features",
    "load_classifier",
    "normalise_only",
    "per_image_loss",
    "predict_proba",
    "train_classifier",
    "tta_params",
    "validate_model_name",
]
