"""The named convolution blocks and up-sampling steps of the dense-prediction
builders (U-Net, SegNet, autoencoder): conv + norm + activation, and
`Conv2DTranspose` / `UpSampling2D` / `MaxUnpooling2D`."""

import math

from keras import layers

from keras_cvlec.layers import convolution
from keras_cvlec.layers.channel_layer_normalization import ChannelLayerNormalization
from keras_cvlec.layers.unpooling import MaxUnpooling2D
from keras_cvlec.utils.validation import channel_axis

__all__ = ["NORM_CHOICES", "conv_block", "upsample"]

NORM_CHOICES = ("batch", "layer", "group", None)


def conv_block(x, channels, prefix, *, norm, activation, data_format, convs=2, last_channels=None):
    """`convs` 3x3 convolutions, each followed by `norm` and `activation`.

    Layers `{prefix}_conv{i}`, `{prefix}_norm{i}`, `{prefix}_act{i}`, i from
    1. Every convolution has `channels` outputs except the last, which has
    `last_channels` when given (SegNet's decoder).

    Args:
        x: the input feature map.
        channels: the convolutions' width.
        prefix: the layer-name prefix, e.g. `"encoder1"`.
        norm: `"batch"`, `"layer"` (over channels), `"group"` (up to 32
            groups) or `None` (convolutions then have biases).
        activation: activation after each (normalised) convolution.
        data_format: `"channels_last"` or `"channels_first"`.
        convs: number of convolutions.
        last_channels: the last convolution's width, if not `channels`.

    Returns:
        The output tensor.
    """
    for index in range(1, convs + 1):
        width = last_channels if index == convs and last_channels else channels
        x = _conv(x, width, 3, f"{prefix}_conv{index}", norm, data_format)
        if norm is not None:
            x = _normalization(norm, width, data_format, f"{prefix}_norm{index}")(x)
        x = layers.Activation(activation, name=f"{prefix}_act{index}")(x)
    return x


def upsample(x, channels, method, prefix, *, norm, data_format, indices=None, skip=None):
    """Doubles the resolution of `x` and maps it to `channels`.

    Args:
        x: the input feature map.
        channels: the output width.
        method: `"transpose"` (2x2 stride-2 `Conv2DTranspose`
            `{prefix}_upconv`), `"bilinear"` / `"nearest"` (`UpSampling2D`
            `{prefix}_upsample`, then a 3x3 convolution `{prefix}_upconv`) or
            `"max_unpool"` (3x3 convolution `{prefix}_upconv`, then
            `MaxUnpooling2D` `{prefix}_unpool` with the encoder's `indices`,
            sized like `skip`, the tensor that was pooled).
        prefix: the layer-name prefix, e.g. `"decoder1"`.
        norm: the block's norm; the 3x3 convolutions have biases only when
            it is `None`.
        data_format: `"channels_last"` or `"channels_first"`.
        indices: the argmax indices, for `"max_unpool"`.
        skip: the pooled tensor, for `"max_unpool"`.

    Returns:
        The output tensor.
    """
    if method == "transpose":
        return convolution.Conv2DTranspose(
            channels,
            2,
            strides=2,
            kernel_initializer="he_normal",
            data_format=data_format,
            name=f"{prefix}_upconv",
        )(x)
    if method == "max_unpool":
        x = _conv(x, channels, 3, f"{prefix}_upconv", norm, data_format)
        return MaxUnpooling2D(2, data_format=data_format, name=f"{prefix}_unpool")(
            [x, indices, skip]
        )
    x = layers.UpSampling2D(
        2, interpolation=method, data_format=data_format, name=f"{prefix}_upsample"
    )(x)
    return _conv(x, channels, 3, f"{prefix}_upconv", norm, data_format)


def _conv(x, channels, kernel_size, name, norm, data_format):
    """A "same"-padded convolution, without bias when a norm follows."""
    return convolution.Conv2D(
        channels,
        kernel_size,
        padding="same",
        use_bias=norm is None,
        kernel_initializer="he_normal",
        data_format=data_format,
        name=name,
    )(x)


def _normalization(norm, channels, data_format, name):
    axis = channel_axis(data_format)
    if norm == "batch":
        return layers.BatchNormalization(axis=axis, name=name)
    if norm == "layer":
        # keras.layers.LayerNormalization(axis=1) is wrong on torch.
        return ChannelLayerNormalization(epsilon=1e-5, data_format=data_format, name=name)
    return layers.GroupNormalization(
        groups=math.gcd(32, channels), axis=axis, epsilon=1e-5, name=name
    )
