"""SegNet (Badrinarayanan et al., 2017): a decoder that remembers where the max was."""

import keras

from keras_cvlec.layers.unpooling import MaxPoolingWithArgmax2D, MaxUnpooling2D
from keras_cvlec.models.conv_blocks import NORM_CHOICES, conv_block
from keras_cvlec.models.inputs import DEFAULT_INPUT_SHAPE, image_input
from keras_cvlec.models.registry import register_model
from keras_cvlec.models.segmentation_head import (
    check_final_activation,
    pad_to_total_stride,
    segmentation_head,
)
from keras_cvlec.utils.validation import (
    check_choice,
    check_positive_int,
    is_int,
    standardize_data_format,
)

__all__ = [
    "SEGNET_CONVS_PER_LEVEL",
    "SEGNET_DEPTH",
    "SEGNET_WIDTH_MULTIPLIERS",
    "build_segnet",
    "segnet_widths",
]

# The VGG-16 layout of the paper's encoder, one entry a level: 3x3
# convolutions per level, and the level's width in units of `filters`
# (64, 128, 256, 512, 512 channels with filters=64).
SEGNET_CONVS_PER_LEVEL = (2, 2, 3, 3, 3)
SEGNET_WIDTH_MULTIPLIERS = (1, 2, 4, 8, 8)
SEGNET_DEPTH = len(SEGNET_CONVS_PER_LEVEL)


def segnet_widths(filters, depth):
    """Channels of each level: the VGG-16 multipliers (8 beyond level 5)."""
    return tuple(
        filters * SEGNET_WIDTH_MULTIPLIERS[min(level, SEGNET_DEPTH - 1)] for level in range(depth)
    )


def build_segnet(
    *,
    input_shape=DEFAULT_INPUT_SHAPE,
    num_classes=2,
    depth=SEGNET_DEPTH,
    filters=64,
    convs_per_level=SEGNET_CONVS_PER_LEVEL,
    norm="batch",
    activation="relu",
    final_activation=None,
    data_format=None,
    name=None,
):
    """Builds a SegNet as a functional `keras.Model`.

    The encoder is VGG-16's convolutional part: `depth` levels of 3x3
    convolutions (+ `norm` + `activation`), level `l` (from 1) with
    `convs_per_level[l - 1]` convolutions of `segnet_widths(filters,
    depth)[l - 1]` channels (64, 128, 256, 512, 512 with `filters=64`), each
    level closed by a 2x2 `MaxPoolingWithArgmax2D` that keeps the position
    of every maximum. The decoder mirrors it: at each level a
    `MaxUnpooling2D` puts the values back at the positions of the matching
    encoder pooling's maxima (zeros elsewhere), then as many 3x3
    convolutions (+ norm + activation) densify the sparse map; the last
    convolution of a level has the width of the next (shallower) level. This
    is SegNet's "remember where the max was" up-sampling: unlike U-Net, the
    decoder gets no encoder feature maps, only the pooling indices. A 1x1
    convolution `head` gives the class scores (the paper's last decoder
    convolution is a 3x3 one; here all decoder convolutions of level 1 keep
    `filters` channels). Inputs of any height and width work: the model pads
    them to a multiple of `2**depth` and crops the output back.

    Layers: `pad`, `encoder{l}_conv{i}` / `_norm{i}` / `_act{i}`,
    `encoder{l}_pool`, `decoder{l}_unpool`, `decoder{l}_conv{i}` /
    `_norm{i}` / `_act{i}`, `head`, `crop` and `final_activation`.

    Args:
        input_shape: image shape in `data_format` order; height and width may
            be `None`.
        num_classes: number of classes; 1 gives one logit per pixel (binary).
        depth: number of pooling (and unpooling) levels; 5 in the paper.
        filters: channels of the first level (64 in the paper).
        convs_per_level: an int (the same for every level) or a sequence of
            ints, one a level from the first (at least `depth` entries; the
            first `depth` are used). The default is VGG-16's
            `(2, 2, 3, 3, 3)`, which allows `depth` up to 5.
        norm: `"batch"` (the paper), `"layer"`, `"group"` or `None`
            (convolutions then have biases).
        activation: activation after each normalised convolution.
        final_activation: `None` (logits), `"softmax"` (over the channel axis
            in either data format), `"sigmoid"`, ...
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        name: the model's name; defaults to `"segnet"`.

    Returns:
        A `keras.Model` mapping images to `(batch, height, width,
        num_classes)` scores (channels first under `channels_first`).

    Example:

    >>> model = keras_cvlec.build_segnet(num_classes=3, depth=3, filters=8)
    >>> model(keras.ops.ones((1, 37, 53, 3))).shape
    (1, 37, 53, 3)
    """
    check_positive_int("num_classes", num_classes)
    check_positive_int("depth", depth)
    check_positive_int("filters", filters)
    convs = _check_convs_per_level(convs_per_level, depth)
    check_choice("norm", norm, NORM_CHOICES)
    check_final_activation(final_activation)
    data_format = standardize_data_format(data_format)

    inputs = image_input(input_shape, data_format, min_size=1)
    x = pad_to_total_stride(
        inputs, 2**depth, data_format, cause=f"`depth`={depth}", input_shape=input_shape
    )

    blocks = dict(norm=norm, activation=activation, data_format=data_format)
    widths = segnet_widths(filters, depth)
    pooled_inputs, pool_indices = [], []
    for level in range(depth):
        x = conv_block(x, widths[level], f"encoder{level + 1}", convs=convs[level], **blocks)
        pooled_inputs.append(x)
        x, indices = MaxPoolingWithArgmax2D(
            2, data_format=data_format, name=f"encoder{level + 1}_pool"
        )(x)
        pool_indices.append(indices)

    for level in reversed(range(depth)):
        prefix = f"decoder{level + 1}"
        x = MaxUnpooling2D(2, data_format=data_format, name=f"{prefix}_unpool")(
            [x, pool_indices[level], pooled_inputs[level]]
        )
        next_width = widths[level - 1] if level > 0 else widths[0]
        x = conv_block(
            x, widths[level], prefix, convs=convs[level], last_channels=next_width, **blocks
        )

    x = segmentation_head(x, inputs, num_classes, final_activation, data_format)
    return keras.Model(inputs, x, name=name or "segnet")


def _check_convs_per_level(convs_per_level, depth):
    """A tuple of `depth` positive ints from an int or a sequence."""
    if is_int(convs_per_level):
        check_positive_int("convs_per_level", convs_per_level)
        return (int(convs_per_level),) * depth
    if not isinstance(convs_per_level, (tuple, list)) or not all(map(is_int, convs_per_level)):
        raise TypeError(
            f"`convs_per_level` must be an int or a sequence of ints. Received: "
            f"convs_per_level={convs_per_level!r}"
        )
    if len(convs_per_level) < depth:
        raise ValueError(
            f"`convs_per_level` needs an entry for each of the depth={depth} levels. "
            f"Received: convs_per_level={tuple(convs_per_level)}"
        )
    if any(n < 1 for n in convs_per_level):
        raise ValueError(
            f"Every entry of `convs_per_level` must be >= 1. Received: "
            f"convs_per_level={tuple(convs_per_level)}"
        )
    return tuple(int(n) for n in convs_per_level[:depth])


register_model("segnet", build_segnet, task="segmentation", family="segnet")
