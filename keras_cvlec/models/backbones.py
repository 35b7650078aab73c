"""A registered classifier (ResNet, ConvNeXt) as the backbone of a
segmentation model: its arguments checked, and its multi-scale features.

Which models are backbones, and the stride of each of their
`stage{k}_output` layers, is the registry's `ModelInfo.feature_strides`.
"""

import os

import keras

from keras_cvlec.models.registry import build_model, list_models, model_info
from keras_cvlec.utils.validation import check_bool, check_imagenet_channels

__all__ = [
    "backbone_features",
    "backbone_names",
    "check_backbone",
    "check_backbone_args",
]


def backbone_names():
    """The registered models usable as backbones, sorted."""
    return list_models(backbone=True)


def check_backbone(backbone):
    """`backbone` must be a registered backbone name; the error lists them."""
    names = backbone_names()
    if not isinstance(backbone, str) or backbone not in names:
        raise ValueError(f"Unknown `backbone`: {backbone!r}. Valid backbones: {', '.join(names)}.")
    return backbone


def check_backbone_args(
    backbone, backbone_weights, freeze_backbone, *, channels, input_shape, optional=False
):
    """Checks a builder's `backbone`, `backbone_weights` and `freeze_backbone`.

    Args:
        backbone: a registered backbone name, or `None` when `optional`
            (then the other two must keep their defaults).
        backbone_weights: `None`, `"imagenet"` (for a backbone that has
            ImageNet weights, and 3 input `channels`) or the path of a
            `.weights.h5` file.
        freeze_backbone: True or False.
        channels: the model's input channels.
        input_shape: the builder's `input_shape`, for the error.
        optional: whether the builder works without a backbone.
    """
    if backbone is None and optional:
        for arg, value, default in (
            ("backbone_weights", backbone_weights, None),
            ("freeze_backbone", freeze_backbone, False),
        ):
            if value != default:
                raise ValueError(f"`{arg}`={value!r} needs a `backbone`. Received: backbone=None")
        return
    check_backbone(backbone)
    check_bool("freeze_backbone", freeze_backbone)
    if backbone_weights is None:
        return
    if isinstance(backbone_weights, str) and backbone_weights == "imagenet":
        if backbone_weights not in model_info(backbone).weights:
            with_weights = [
                name for name in backbone_names() if backbone_weights in model_info(name).weights
            ]
            raise ValueError(
                f"`backbone_weights`={backbone_weights!r}: backbone={backbone!r} has no "
                f"ImageNet weights. Backbones with them: {', '.join(with_weights)}."
            )
        check_imagenet_channels("backbone_weights", backbone_weights, channels, input_shape)
        return
    if isinstance(backbone_weights, (str, os.PathLike)) and os.fspath(backbone_weights).endswith(
        ".weights.h5"
    ):
        return
    raise ValueError(
        "`backbone_weights` must be None, 'imagenet' or the path of a "
        f"'.weights.h5' file. Received: backbone_weights={backbone_weights!r}"
    )


def backbone_features(x, backbone, *, strides, weights, freeze, data_format, name):
    """The backbone's feature maps at `strides`, computed on `x`.

    The headless backbone is built for `x`'s shape and called as one nested
    `keras.Model` named `name` (trainable unless `freeze`) whose outputs are
    its `stage{k}_output` layers, k picked by the registry's
    `feature_strides`.

    Args:
        x: the (padded) image tensor.
        backbone: a registered backbone name.
        strides: the strides of the wanted features, each one of the
            backbone's `feature_strides`, e.g. `(32, 16, 8)`.
        weights: the backbone's `weights` argument.
        freeze: whether the backbone's weights are frozen.
        data_format: `"channels_last"` or `"channels_first"`.
        name: the nested model's name.

    Returns:
        A list of tensors, one per entry of `strides`.
    """
    model = build_model(
        backbone,
        include_top=False,
        input_shape=tuple(x.shape[1:]),
        data_format=data_format,
        weights=weights,
    )
    stages = [model_info(backbone).feature_strides.index(stride) + 1 for stride in strides]
    features = [model.get_layer(f"stage{stage}_output").output for stage in stages]
    feature_model = keras.Model(model.input, features, name=name)
    feature_model.trainable = not freeze
    outputs = feature_model(x)
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
