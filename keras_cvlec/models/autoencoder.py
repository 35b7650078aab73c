"""A convolutional autoencoder: the U-Net's shape without its skip connections."""

import keras
from keras import layers

from keras_cvlec.models.conv_blocks import NORM_CHOICES, conv_block, upsample
from keras_cvlec.models.inputs import DEFAULT_INPUT_SHAPE, image_input, input_channels
from keras_cvlec.models.registry import register_model
from keras_cvlec.models.segmentation_head import (
    check_final_activation,
    pad_to_total_stride,
    segmentation_head,
)
from keras_cvlec.utils.validation import (
    check_choice,
    check_positive_int,
    standardize_data_format,
)

__all__ = ["AUTOENCODER_UPSAMPLING_CHOICES", "build_autoencoder"]

# "max_unpool" is left out on purpose: the pooling indices would carry the
# encoder's fine-scale positions past the bottleneck, a skip in disguise.
AUTOENCODER_UPSAMPLING_CHOICES = ("transpose", "bilinear", "nearest")


def build_autoencoder(
    *,
    input_shape=DEFAULT_INPUT_SHAPE,
    depth=4,
    filters=64,
    upsampling="transpose",
    norm="batch",
    activation="relu",
    final_activation=None,
    data_format=None,
    name=None,
):
    """Builds a convolutional autoencoder as a functional `keras.Model`.

    The same layers as `build_unet` without an encoder, minus the skip
    connections: each level has two 3x3 convolutions (+ `norm` +
    `activation`) with `filters * 2**level` channels; the encoder halves the
    resolution `depth` times with 2x2 max pooling down to the bottleneck
    (`filters * 2**depth` channels at stride `2**depth`), the decoder
    doubles it again with `upsampling` and two convolutions per level, and
    a 1x1 convolution `head` maps back to the input's channel count. All the
    information the decoder gets passes through the bottleneck, which is
    what the lecture compares with U-Net: without skips, the fine detail of
    the reconstruction (edges, texture) is blurred. Train it to reconstruct
    its input, e.g. `model.fit(images, images)` with a mean-squared error.
    Inputs of any height and width work (padded to a multiple of `2**depth`,
    the output cropped back).

    Layers: `pad`, `encoder{l}_conv{i}` / `_norm{i}` / `_act{i}`,
    `encoder{l}_pool`, `bottleneck_*`, `decoder{l}_upconv` (and
    `decoder{l}_upsample`), `decoder{l}_conv{i}` / `_norm{i}` / `_act{i}`,
    `head`, `crop` and `final_activation`.

    Args:
        input_shape: image shape in `data_format` order; height and width may
            be `None`. The output has the same shape.
        depth: number of down-sampling steps.
        filters: channels of the first level.
        upsampling: `"transpose"` (learned 2x2 stride-2 `Conv2DTranspose`),
            `"bilinear"` or `"nearest"` (`UpSampling2D` + 3x3 convolution).
            (No `"max_unpool"`: the pooling indices would be a skip
            connection.)
        norm: `"batch"`, `"layer"`, `"group"` or `None`.
        activation: activation after each normalised convolution.
        final_activation: `None` (the default: a linear output, for inputs
            of any range, e.g. standardised images, with a mean-squared
            error), or e.g. `"sigmoid"` for images in `[0, 1]` (with a
            mean-squared error or binary cross-entropy).
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        name: the model's name; defaults to `"autoencoder"`.

    Returns:
        A `keras.Model` whose output has the input's shape.

    Example:

    >>> model = keras_cvlec.build_autoencoder(input_shape=(None, None, 1),
    ...     depth=2, filters=8, final_activation="sigmoid")
    >>> model(keras.ops.ones((1, 37, 53, 1))).shape
    (1, 37, 53, 1)
    """
    check_positive_int("depth", depth)
    check_positive_int("filters", filters)
    check_choice("upsampling", upsampling, AUTOENCODER_UPSAMPLING_CHOICES)
    check_choice("norm", norm, NORM_CHOICES)
    check_final_activation(final_activation)
    data_format = standardize_data_format(data_format)

    inputs = image_input(input_shape, data_format, min_size=1)
    x = pad_to_total_stride(
        inputs, 2**depth, data_format, cause=f"`depth`={depth}", input_shape=input_shape
    )

    blocks = dict(norm=norm, activation=activation, data_format=data_format)
    for level in range(depth):
        x = conv_block(x, filters * 2**level, f"encoder{level + 1}", **blocks)
        x = layers.MaxPooling2D(2, data_format=data_format, name=f"encoder{level + 1}_pool")(x)
    x = conv_block(x, filters * 2**depth, "bottleneck", **blocks)
    for level in reversed(range(depth)):
        width = filters * 2**level
        prefix = f"decoder{level + 1}"
        x = upsample(x, width, upsampling, prefix, norm=norm, data_format=data_format)
        x = conv_block(x, width, prefix, **blocks)

    channels = input_channels(inputs, data_format)
    x = segmentation_head(x, inputs, channels, final_activation, data_format)
    return keras.Model(inputs, x, name=name or "autoencoder")


register_model("autoencoder", build_autoencoder, task="reconstruction", family="autoencoder")
