"""The registry of model names: what `list_models()` and the CLI build, with
what callers need to know about each model (task, family, feature strides,
input size, weights) so that nobody guesses it from the name."""

import dataclasses
import types

from keras_cvlec.tasks import TASKS
from keras_cvlec.utils.validation import check_choice

__all__ = [
    "ModelInfo",
    "build_model",
    "list_models",
    "model_info",
    "model_task",
    "register_model",
]

_REGISTRY = {}


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """One registry entry.

    Attributes:
        name: the registered name, e.g. `"resnet50"`.
        builder: the function that builds it, e.g. `build_resnet`.
        defaults: the keyword arguments `build_model(name)` passes to
            `builder` (e.g. `{"variant": "resnet50"}`); a read-only mapping.
        task: one of `TASKS`: what the model's outputs predict.
        family: the architecture family (`"resnet"`, `"convnext"`, `"unet"`,
            ...); the training recipes are keyed by it.
        feature_strides: for a model usable as a segmentation backbone, the
            strides of its `stage{k}_output` layers (k = 1, 2, ...); empty
            otherwise.
        input_size: the image size of the model's published weights and
            recipe (e.g. 224), or None where it has none (any size that is a
            multiple of its total stride works).
        weights: the named weights `build_model(name, weights=...)` accepts
            with the entry's defaults, besides None and a `.weights.h5` path
            (e.g. `("imagenet",)`). Other arguments can rule them out: ResNet
            ImageNet weights are for versions `"v1"` (the default) and `"v2"`
            only, not `"v1.5"`, and for the published width (`filters=64`).
    """

    name: str
    builder: object
    defaults: types.MappingProxyType
    task: str
    family: str
    feature_strides: tuple = ()
    input_size: int = None
    weights: tuple = ()

    @property
    def is_backbone(self):
        """Whether segmentation models can use this model as their backbone."""
        return bool(self.feature_strides)


def register_model(
    name,
    builder,
    *,
    task,
    family,
    defaults=None,
    feature_strides=(),
    input_size=None,
    weights=(),
):
    """Registers `name` as `builder(**defaults)`, with its metadata (see
    `ModelInfo`).

    Example:

    >>> register_model("resnet18_narrow", build_resnet, task="classification",
    ...                family="resnet", defaults={"variant": "resnet18", "filters": 16},
    ...                feature_strides=(4, 8, 16, 32))  # doctest: +SKIP
    """
    if not isinstance(name, str) or name in _REGISTRY:
        raise ValueError(f"`name` must be a new model name. Received: name={name!r}")
    check_choice("task", task, TASKS)
    _REGISTRY[name] = ModelInfo(
        name=name,
        builder=builder,
        defaults=types.MappingProxyType(dict(defaults or {})),
        task=task,
        family=family,
        feature_strides=tuple(feature_strides),
        input_size=input_size,
        weights=tuple(weights),
    )


def list_models(task=None, *, backbone=False):
    """Every registered model name, sorted.

    Args:
        task: if given, only the models for this task (one of `TASKS`).
        backbone: if True, only the models usable as a segmentation backbone.

    Returns:
        A list of strings, each accepted by `build_model`.

    Example:

    >>> "resnet50" in keras_cvlec.list_models()
    True
    >>> keras_cvlec.list_models("segmentation")[:2]
    ['fcn16s', 'fcn32s']
    """
    check_choice("task", task, (None, *TASKS))
    return sorted(
        name
        for name, info in _REGISTRY.items()
        if task in (None, info.task) and (info.is_backbone or not backbone)
    )


def model_info(name):
    """The `ModelInfo` of the registered model `name`.

    Example:

    >>> keras_cvlec.model_info("convnext_tiny").weights
    ('imagenet',)
    """
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown model name: {name!r}. Registered models: {', '.join(list_models())}."
        )
    return _REGISTRY[name]


def model_task(name):
    """The task (`"classification"`, `"segmentation"` or `"reconstruction"`)
    of the registered model `name`."""
    return model_info(name).task


def build_model(name, **kwargs):
    """Builds the registered model `name`; `kwargs` override its defaults.

    Example:

    >>> model = build_model("resnet18", num_classes=10, input_shape=(32, 32, 3))
    >>> model.output.shape
    (None, 10)
    """
    info = model_info(name)
    return info.builder(**{**info.defaults, **kwargs})
