"""ConvNeXt (Liu et al., 2022, "A ConvNet for the 2020s"), atto to xlarge."""

import collections

import keras
from keras import layers

from keras_cvlec.layers import convolution
from keras_cvlec.layers.channel_layer_normalization import ChannelLayerNormalization
from keras_cvlec.layers.convnext_block import (
    EPSILON,
    ConvNeXtBlock,
    check_layer_scale_init_value,
    kernel_initializer,
)
from keras_cvlec.models.heads import check_head_args, classification_head
from keras_cvlec.models.inputs import DEFAULT_INPUT_SHAPE, image_input, input_channels
from keras_cvlec.models.registry import register_model
from keras_cvlec.utils.validation import (
    check_bool,
    check_choice,
    check_rate,
    standardize_data_format,
)
from keras_cvlec.weights import (
    check_weights_arg,
    load_weights_arg,
    prepare_imagenet_weights,
)

__all__ = [
    "CONVNEXT_DROP_PATH_RATES",
    "CONVNEXT_VARIANTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NUM_STAGES",
    "STEM_STRIDE",
    "TOTAL_STRIDE",
    "ConvNeXtVariant",
    "build_convnext",
    "stage_widths",
]

ConvNeXtVariant = collections.namedtuple(
    "ConvNeXtVariant",
    ["depths", "width", "drop_path_rate", "keras_applications"],
)
ConvNeXtVariant.__doc__ = """One row of `CONVNEXT_VARIANTS`.

depths: blocks per stage. width: channels of stage 1 (doubling per stage).
drop_path_rate: the stochastic-depth rate of the paper's ImageNet-1K training
(Liu et al. 2022, Table 5; the official repository's TRAINING.md), None where
there is none: timm's small variants, and xlarge, which the paper trains only
on ImageNet-22K (rate 0.2, then 0.4 to fine-tune on ImageNet-1K).
keras_applications: the keras.applications model with the same architecture
(ImageNet weights), or None.
"""

# One row a variant. atto .. nano are timm's small variants.
CONVNEXT_VARIANTS = {
    "atto": ConvNeXtVariant((2, 2, 6, 2), 40, None, None),
    "femto": ConvNeXtVariant((2, 2, 6, 2), 48, None, None),
    "pico": ConvNeXtVariant((2, 2, 6, 2), 64, None, None),
    "nano": ConvNeXtVariant((2, 2, 8, 2), 80, None, None),
    "tiny": ConvNeXtVariant((3, 3, 9, 3), 96, 0.1, "ConvNeXtTiny"),
    "small": ConvNeXtVariant((3, 3, 27, 3), 96, 0.4, "ConvNeXtSmall"),
    "base": ConvNeXtVariant((3, 3, 27, 3), 128, 0.5, "ConvNeXtBase"),
    "large": ConvNeXtVariant((3, 3, 27, 3), 192, 0.5, "ConvNeXtLarge"),
    "xlarge": ConvNeXtVariant((3, 3, 27, 3), 256, None, "ConvNeXtXLarge"),
}
# The published ImageNet-1K drop-path rates by variant, which the "convnext"
# training recipe uses, e.g. build_convnext("small",
# drop_path_rate=CONVNEXT_DROP_PATH_RATES["small"]).
CONVNEXT_DROP_PATH_RATES = {
    name: row.drop_path_rate
    for name, row in CONVNEXT_VARIANTS.items()
    if row.drop_path_rate is not None
}
# The input normalisation the ImageNet weights expect, on pixels in [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_STAGES = 4
STEM_STRIDE = 4
TOTAL_STRIDE = 32


def stage_widths(width):
    """Channels of the four stages: `width` doubling per stage."""
    return tuple(width * 2**stage for stage in range(NUM_STAGES))


def build_convnext(
    variant="tiny",
    *,
    num_classes=1000,
    include_top=True,
    pooling=None,
    input_shape=DEFAULT_INPUT_SHAPE,
    data_format=None,
    drop_path_rate=0.0,
    layer_scale_init_value=1e-6,
    gelu_approximate=False,
    classifier_activation="softmax",
    weights=None,
    name=None,
):
    """Builds a ConvNeXt as a functional `keras.Model`.

    Layers: a patchify stem (`stem_conv`, 4x4 stride 4, and `stem_norm`);
    four stages of `ConvNeXtBlock`s `stage{s}_block{b}`, stages 2-4 opened by
    a downsampling layer norm and 2x2 stride-2 convolution
    (`stage{s}_downsample_norm`, `stage{s}_downsample_conv`); Identity layers
    `stage1_output` ... `stage4_output` marking the last feature map at
    strides 4, 8, 16 and 32 (`model.get_layer("stage2_output").output`); and
    the head: global average pooling `avg_pool`, layer norm `head_norm` and
    the `Dense` classifier `predictions`. A headless model
    (`include_top=False`) ends at `stage4_output` or its global pooling,
    without a norm. Layer norms use epsilon 1e-6; convolution and dense
    kernels of the body start from a normal distribution with std 0.02, as
    in the official implementation (the classifier keeps Keras's default).

    Unlike keras.applications, the model contains no input normalisation and
    supports `channels_first`. The ImageNet weights expect RGB inputs
    normalised as `(pixels / 255 - IMAGENET_MEAN) / IMAGENET_STD` (the
    torchvision / timm convention), which is exactly what keras.applications'
    built-in `Normalization` layer computes from `[0, 255]` pixels; apply it
    in the input pipeline.

    Args:
        variant: one of `CONVNEXT_VARIANTS`: `"atto"`, `"femto"`, `"pico"`,
            `"nano"`, `"tiny"`, `"small"`, `"base"`, `"large"`, `"xlarge"`.
        num_classes: classifier width when `include_top`.
        include_top: whether to end with the classification head.
        pooling: `None`, `"avg"` or `"max"`: global pooling of a headless
            model.
        input_shape: image shape in `data_format` order; height and width
            `None` or at least 32. The stem and downsampling convolutions
            floor sizes that are not multiples of their stride.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        drop_path_rate: stochastic-depth rate of the last block, in `[0, 1)`;
            it grows linearly from 0 at the first block. The recipes' rates
            are in `CONVNEXT_DROP_PATH_RATES`.
        layer_scale_init_value: initial layer-scale value of every block, or
            None for no layer scale.
        gelu_approximate: whether the blocks use the tanh approximation of
            GELU instead of the exact erf form.
        classifier_activation: activation of `predictions` (`None` for
            logits).
        weights: `None`, `"imagenet"` (tiny ... xlarge, through the
            keras.applications `ConvNeXtTiny` ... `ConvNeXtXLarge` weights;
            needs 3 input channels, layer scale, and `num_classes=1000` with
            the top; downloaded once into `~/.keras/models`,
            `keras_cvlec.weights.WeightsUnavailableError` when that fails) or
            the path of a `.weights.h5` file saved from the same
            architecture.
        name: the model's name; defaults to e.g. `"convnext_tiny"`.

    Returns:
        A `keras.Model`.

    Example:

    >>> model = keras_cvlec.build_convnext("atto", num_classes=10,
    ...     input_shape=(64, 64, 3))
    >>> model.output_shape
    (None, 10)
    """
    spec = CONVNEXT_VARIANTS[check_choice("variant", variant, tuple(CONVNEXT_VARIANTS))]
    check_head_args(include_top, num_classes, pooling)
    drop_path_rate = check_rate("drop_path_rate", drop_path_rate)
    layer_scale_init_value = check_layer_scale_init_value(layer_scale_init_value)
    check_bool("gelu_approximate", gelu_approximate)
    data_format = standardize_data_format(data_format)
    application = check_weights_arg(
        weights,
        imagenet_source=spec.keras_applications,
        description=f"variant={variant!r}",
        available=[n for n, row in CONVNEXT_VARIANTS.items() if row.keras_applications],
        include_top=include_top,
        num_classes=num_classes,
    )
    if application is not None and layer_scale_init_value is None:
        raise ValueError(
            "`weights='imagenet'` needs layer scale (the weights include it). "
            "Received: layer_scale_init_value=None"
        )

    inputs = image_input(input_shape, data_format, min_size=TOTAL_STRIDE)
    if application is not None:
        prepare_imagenet_weights(
            application, input_channels(inputs, data_format), input_shape, include_top
        )

    widths = stage_widths(spec.width)
    total_blocks = sum(spec.depths)
    block_number = 0
    x = inputs
    for stage, (width, depth) in enumerate(zip(widths, spec.depths), start=1):
        if stage == 1:
            x = _conv(width, STEM_STRIDE, data_format, "stem_conv")(x)
            x = ChannelLayerNormalization(EPSILON, data_format=data_format, name="stem_norm")(x)
        else:
            x = ChannelLayerNormalization(
                EPSILON, data_format=data_format, name=f"stage{stage}_downsample_norm"
            )(x)
            x = _conv(width, 2, data_format, f"stage{stage}_downsample_conv")(x)
        for index in range(1, depth + 1):
            x = ConvNeXtBlock(
                drop_path_rate=drop_path_rate * block_number / max(total_blocks - 1, 1),
                layer_scale_init_value=layer_scale_init_value,
                gelu_approximate=gelu_approximate,
                data_format=data_format,
                name=f"stage{stage}_block{index}",
            )(x)
            block_number += 1
        x = layers.Identity(name=f"stage{stage}_output")(x)

    outputs = classification_head(
        x,
        include_top=include_top,
        num_classes=num_classes,
        pooling=pooling,
        classifier_activation=classifier_activation,
        data_format=data_format,
        norm=layers.LayerNormalization(epsilon=EPSILON, name="head_norm"),
    )
    model = keras.Model(inputs, outputs, name=name or f"convnext_{variant}")
    return load_weights_arg(model, weights, application, include_top)


def _conv(filters, size, data_format, name):
    """The stem's and downsampling layers' non-overlapping `size` x `size`
    convolution with stride `size`."""
    return convolution.Conv2D(
        filters,
        size,
        strides=size,
        kernel_initializer=kernel_initializer(),
        data_format=data_format,
        name=name,
    )


for _variant in CONVNEXT_VARIANTS:
    register_model(
        f"convnext_{_variant}",
        build_convnext,
        task="classification",
        family="convnext",
        defaults={"variant": _variant},
        feature_strides=(4, 8, 16, 32),
        input_size=224,
        weights=("imagenet",) if CONVNEXT_VARIANTS[_variant].keras_applications else (),
    )
