"""Weight transfer from keras.applications models into keras_cvlec models.

Layers are matched by name: keras_cvlec's hierarchical names
(`stage2_block1` with sublayers `conv1`, `bn1`, ...) are translated into the
flat keras.applications names (`conv3_block1_1_conv`, ...), every weight
shape is checked, and any layer left over on either side is an error.
"""

import re

import keras

from keras_cvlec.layers.resnet_blocks import ResNetBlock

# keras_cvlec top-level layer name -> keras.applications layer name, where
# they differ.
_RESNET_LAYER_NAMES = {"stem_conv": "conv1_conv", "stem_bn": "conv1_bn"}
_CLASSIFIER_NAME = "predictions"


def _resnet_block_pairs(block):
    stage, index = re.fullmatch(r"stage(\d+)_block(\d+)", block.name).groups()
    prefix = f"conv{int(stage) + 1}_block{index}"
    if block.preact_norm is not None:
        yield block.preact_norm, f"{prefix}_preact_bn"
    for number, conv in enumerate(block.branch_convs, start=1):
        yield conv, f"{prefix}_{number}_conv"
    for number, norm in enumerate(block.branch_norms, start=1):
        yield norm, f"{prefix}_{number}_bn"
    if block.shortcut_conv is not None:
        yield block.shortcut_conv, f"{prefix}_0_conv"
    if block.shortcut_norm is not None:
        yield block.shortcut_norm, f"{prefix}_0_bn"


def _layer_pairs(model):
    """(keras_cvlec layer, keras.applications layer name) for each weighted layer."""
    for layer in model.layers:
        if isinstance(layer, ResNetBlock):
            yield from _resnet_block_pairs(layer)
        elif layer.weights:
            yield layer, _RESNET_LAYER_NAMES.get(layer.name, layer.name)


def from_keras_applications(model, source_model):
    """Copies the weights of a keras.applications model into `model`.

    Supported sources: `ResNet50/101/152` into `build_resnet(..., version="v1")`
    and `ResNet50V2/101V2/152V2` into `version="v2"` of the same depth. The
    source's classifier is skipped when `model` has none (`include_top=False`).

    Args:
        model: a keras_cvlec model.
        source_model: the keras.applications model, built with any weights.

    Returns:
        `model`, with the source's weights.

    Raises:
        ValueError: when a layer is missing on either side or a weight shape
            differs (e.g. a different depth, version or `num_classes`).

    Example:

    >>> source = keras.applications.ResNet50(weights=None)
    >>> model = keras_cvlec.build_resnet("resnet50")
    >>> _ = keras_cvlec.weights.from_keras_applications(model, source)
    """
    source_layers = {layer.name: layer for layer in source_model.layers}
    assignments = []
    for target, source_name in _layer_pairs(model):
        source = source_layers.pop(source_name, None)
        if source is None:
            raise ValueError(
                f"Cannot transfer weights from {source_model.name!r} into "
                f"{model.name!r}: the source has no layer {source_name!r} for "
                f"layer {target.path!r}."
            )
        source_weights = source.get_weights()
        target_shapes = [tuple(w.shape) for w in target.weights]
        source_shapes = [tuple(w.shape) for w in source_weights]
        if target_shapes != source_shapes:
            raise ValueError(
                f"Cannot transfer weights from {source_model.name!r} into "
                f"{model.name!r}: layer {target.path!r} has weight shapes "
                f"{target_shapes}, source layer {source_name!r} has "
                f"{source_shapes}."
            )
        assignments.append((target, source_weights))
    leftover = [name for name, layer in source_layers.items() if layer.weights]
    if leftover == [_CLASSIFIER_NAME] and _CLASSIFIER_NAME not in (
        layer.name for layer in model.layers
    ):
        leftover = []
    if leftover:
        raise ValueError(
            f"Cannot transfer weights from {source_model.name!r} into "
            f"{model.name!r}: source layers without a counterpart: "
            f"{', '.join(leftover[:10])}{' ...' if len(leftover) > 10 else ''}."
        )
    for target, source_weights in assignments:
        target.set_weights(source_weights)
    return model


def load_imagenet_weights(model, application_name, include_top):
    """Builds `keras.applications.<application_name>` with ImageNet weights
    (Keras downloads them once) and transfers them into `model`."""
    application = getattr(keras.applications, application_name)
    source = application(weights="imagenet", include_top=include_top)
    return from_keras_applications(model, source)
