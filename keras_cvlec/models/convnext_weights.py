"""keras.applications `ConvNeXtTiny` ... `ConvNeXtXLarge` names for the
layers of `build_convnext`, for `keras_cvlec.weights.from_keras_applications`.

keras.applications names every ConvNeXt layer after the model
(`{prefix}` below, e.g. `"convnext_tiny"`):
`convnext_tiny_stage_1_block_0_depthwise_conv`,
`convnext_tiny_downsampling_conv_0`, ... This module only names layers;
`keras_cvlec.weights` matches them, checks every shape and copies (and
turns keras.applications' `Conv2D(groups=C)` depthwise kernels into
`DepthwiseConv2D` ones). It imports no model module (`keras_cvlec.weights`
imports it).
"""

import re

import keras

from keras_cvlec.layers.convnext_block import ConvNeXtBlock

__all__ = [
    "APPLICATION_PREFIX",
    "BLOCK_CLASS",
    "layer_pairs",
    "skippable_top",
    "weights_file",
]

# Every keras.applications ConvNeXt's name starts with this.
APPLICATION_PREFIX = "ConvNeXt"
# A model with these blocks is a ConvNeXt.
BLOCK_CLASS = ConvNeXtBlock
# Top-level layers; the downsampling layers are named by _DOWNSAMPLE.
_LAYER_NAMES = {
    "stem_conv": "{prefix}_stem_conv",
    "stem_norm": "{prefix}_stem_layernorm",
    "head_norm": "{prefix}_head_layernorm",
    "predictions": "{prefix}_head_dense",
}
# stage{s}_downsample_{norm,conv} (s = 2, 3, 4) -> 0-based downsampling index.
_DOWNSAMPLE = re.compile(r"stage(\d+)_downsample_(norm|conv)")
_DOWNSAMPLE_NAMES = {
    "norm": "{prefix}_downsampling_layernorm_{index}",
    "conv": "{prefix}_downsampling_conv_{index}",
}
# ConvNeXtBlock sublayer -> keras.applications suffix.
_BLOCK_NAMES = {
    "depthwise_conv": "depthwise_conv",
    "norm": "layernorm",
    "pointwise_conv1": "pointwise_conv_1",
    "pointwise_conv2": "pointwise_conv_2",
    "layer_scale": "layer_scale",
}
# The source's classifier, not needed by a headless target.
_TOP = ("{prefix}_head_layernorm", "{prefix}_head_dense")


def weights_file(application_name, include_top):
    """(folder, file name) of the ImageNet weights of
    `keras.applications.<application_name>` on keras.applications' server,
    e.g. `("convnext", "convnext_tiny_notop.h5")`."""
    variant = application_name[len(APPLICATION_PREFIX) :].lower()
    return "convnext", f"convnext_{variant}{'' if include_top else '_notop'}.h5"


def layer_pairs(model, prefix):
    """(keras_cvlec layer, keras.applications layer name) for each layer of
    `model` with weights; `prefix` is the source model's name."""
    for layer in model.layers:
        if isinstance(layer, ConvNeXtBlock):
            yield from _block_pairs(layer, prefix)
        elif layer.weights:
            yield layer, _layer_name(layer.name, prefix)


def skippable_top(source_model, prefix):
    """The source layers that a headless target does not need: the
    classifier, and the final `LayerNormalization` that a headless
    keras.applications ConvNeXt (`include_top=False`) appends after its last
    stage (keras_cvlec's headless ConvNeXt returns the raw stage-4 features,
    as `stage4_output`)."""
    names = {name.format(prefix=prefix) for name in _TOP}
    last = source_model.layers[-1]
    if isinstance(last, keras.layers.LayerNormalization):
        names.add(last.name)
    return names


def _block_pairs(block, prefix):
    stage, index = re.fullmatch(r"stage(\d+)_block(\d+)", block.name).groups()
    source = f"{prefix}_stage_{int(stage) - 1}_block_{int(index) - 1}"
    for attribute, suffix in _BLOCK_NAMES.items():
        sublayer = getattr(block, attribute)
        if sublayer is not None:
            yield sublayer, f"{source}_{suffix}"


def _layer_name(name, prefix):
    match = _DOWNSAMPLE.fullmatch(name)
    if match:
        stage, kind = match.groups()
        return _DOWNSAMPLE_NAMES[kind].format(prefix=prefix, index=int(stage) - 2)
    return _LAYER_NAMES.get(name, name).format(prefix=prefix)
