"""keras.applications `ResNet50` ... `ResNet152V2` names for the layers of
`build_resnet`, for `keras_cvlec.weights.from_keras_applications`.

keras_cvlec names layers hierarchically (`stage2_block1` with sublayers
`conv1`, `bn1`, `shortcut_conv`, ...), keras.applications flatly
(`conv3_block1_1_conv`, `conv3_block1_0_bn`, ...). This module only names
layers; `keras_cvlec.weights` matches them, checks every shape and copies.
It imports no model module (`keras_cvlec.weights` imports it).
"""

import re

from keras_cvlec.layers.resnet_blocks import ResNetBlock

__all__ = [
    "APPLICATION_PREFIX",
    "BLOCK_CLASS",
    "layer_pairs",
    "skippable_top",
    "weights_file",
]

# Every keras.applications ResNet's name starts with this.
APPLICATION_PREFIX = "ResNet"
# A model with these blocks is a ResNet.
BLOCK_CLASS = ResNetBlock
# Top-level layers named differently; the others keep their names.
_LAYER_NAMES = {"stem_conv": "conv1_conv", "stem_bn": "conv1_bn"}
# The source's classifier, not needed by a headless target.
_TOP = ("predictions",)


def weights_file(application_name, include_top):
    """(folder, file name) of the ImageNet weights of
    `keras.applications.<application_name>` on keras.applications' server,
    e.g. `("resnet", "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5")`."""
    suffix = "" if include_top else "_notop"
    return "resnet", f"{application_name.lower()}_weights_tf_dim_ordering_tf_kernels{suffix}.h5"


def layer_pairs(model, prefix):
    """(keras_cvlec layer, keras.applications layer name) for each layer of
    `model` with weights; `prefix` (the source model's name) is unused: the
    ResNet names do not contain it."""
    del prefix
    for layer in model.layers:
        if isinstance(layer, ResNetBlock):
            yield from _block_pairs(layer)
        elif layer.weights:
            yield layer, _LAYER_NAMES.get(layer.name, layer.name)


def skippable_top(source_model, prefix):
    """The source layers that a headless target does not need."""
    del source_model, prefix
    return set(_TOP)


def _block_pairs(block):
    stage, index = re.fullmatch(r"stage(\d+)_block(\d+)", block.name).groups()
    source = f"conv{int(stage) + 1}_block{index}"
    if block.preact_norm is not None:
        yield block.preact_norm, f"{source}_preact_bn"
    for number, conv in enumerate(block.branch_convs, start=1):
        yield conv, f"{source}_{number}_conv"
    for number, norm in enumerate(block.branch_norms, start=1):
        yield norm, f"{source}_{number}_bn"
    if block.shortcut_conv is not None:
        yield block.shortcut_conv, f"{source}_0_conv"
    if block.shortcut_norm is not None:
        yield block.shortcut_norm, f"{source}_0_bn"
