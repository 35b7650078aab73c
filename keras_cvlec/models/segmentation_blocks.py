"""Pieces shared by the dense-prediction builders (U-Net, SegNet, FCN, autoencoder).

- `SegmentationLayers`: the named convolution blocks and up-sampling steps
  (conv + norm + activation, `Conv2DTranspose` / `UpSampling2D` /
  `MaxUnpooling2D`), for one norm, activation and data format.
- `check_total_stride`: a fixed input size must be at least the network's
  total stride.
- `backbone_names`, `check_backbone`, `backbone_features`: a registered
  ResNet or ConvNeXt as a feature extractor, through its `stage{k}_output`
  layers (strides 4, 8, 16, 32).
"""

import math

import keras
from keras import layers

# Imported for their side effect: they register the backbone names.
import keras_cvlec.models.convnext  # noqa: F401
import keras_cvlec.models.resnet  # noqa: F401
from keras_cvlec.layers.bias_first_conv import BiasFirstConv2D, BiasFirstConv2DTranspose
from keras_cvlec.layers.channel_layer_normalization import ChannelLayerNormalization
from keras_cvlec.layers.unpooling import MaxUnpooling2D
from keras_cvlec.models.inputs import axis_order_hint
from keras_cvlec.models.registry import build_model, list_models
from keras_cvlec.utils.validation import channel_axis

NORM_CHOICES = ("batch", "layer", "group", None)
BACKBONE_FAMILIES = ("resnet", "convnext_")
BACKBONE_STAGES = 4


class SegmentationLayers:
    """Creates named conv blocks and up-sampling steps for one norm/activation/data format.

    Args:
        norm: `"batch"`, `"layer"` (over channels), `"group"` (up to 32
            groups) or `None` (convolutions then have biases).
        activation: activation after each (normalised) convolution.
        data_format: `"channels_last"` or `"channels_first"`.
    """

    def __init__(self, norm, activation, data_format):
        self.norm = norm
        self.activation = activation
        self.data_format = data_format

    def _normalization(self, channels, name):
        axis = channel_axis(self.data_format)
        if self.norm == "batch":
            return layers.BatchNormalization(axis=axis, name=name)
        if self.norm == "layer":
            # keras.layers.LayerNormalization(axis=1) is wrong on torch.
            return ChannelLayerNormalization(
                epsilon=1e-5, data_format=self.data_format, name=name
            )
        return layers.GroupNormalization(
            groups=math.gcd(32, channels), axis=axis, epsilon=1e-5, name=name
        )

    def conv(self, x, channels, kernel_size, name):
        """A "same"-padded convolution, without bias when a norm follows."""
        return BiasFirstConv2D(
            channels,
            kernel_size,
            padding="same",
            use_bias=self.norm is None,
            kernel_initializer="he_normal",
            data_format=self.data_format,
            name=name,
        )(x)

    def conv_block(self, x, channels, prefix, convs=2, last_channels=None):
        """`convs` 3x3 convolutions, each followed by norm and activation.

        Layers `{prefix}_conv{i}`, `{prefix}_norm{i}`, `{prefix}_act{i}`, i
        from 1. Every convolution has `channels` outputs except the last,
        which has `last_channels` when given (SegNet's decoder).
        """
        for index in range(1, convs + 1):
            width = last_channels if index == convs and last_channels else channels
            x = self.conv(x, width, 3, f"{prefix}_conv{index}")
            if self.norm is not None:
                x = self._normalization(width, f"{prefix}_norm{index}")(x)
            x = layers.Activation(self.activation, name=f"{prefix}_act{index}")(x)
        return x

    def upsample(self, x, channels, method, prefix, indices=None, skip=None):
        """Doubles the resolution of `x` and maps it to `channels`.

        `method`: `"transpose"` (2x2 stride-2 `Conv2DTranspose`),
        `"bilinear"` / `"nearest"` (`UpSampling2D`, then a 3x3 convolution)
        or `"max_unpool"` (3x3 convolution, then `MaxUnpooling2D` with the
        encoder's `indices`, sized like `skip`, the tensor that was pooled).
        """
        if method == "transpose":
            return BiasFirstConv2DTranspose(
                channels,
                2,
                strides=2,
                kernel_initializer="he_normal",
                data_format=self.data_format,
                name=f"{prefix}_upconv",
            )(x)
        if method == "max_unpool":
            x = self.conv(x, channels, 3, f"{prefix}_upconv")
            return MaxUnpooling2D(2, data_format=self.data_format, name=f"{prefix}_unpool")(
                [x, indices, skip]
            )
        x = layers.UpSampling2D(
            2, interpolation=method, data_format=self.data_format, name=f"{prefix}_upsample"
        )(x)
        return self.conv(x, channels, 3, f"{prefix}_upconv")


def check_final_activation(final_activation):
    """`None`, or an activation that `keras.activations.get` knows."""
    if final_activation is None:
        return None
    try:
        keras.activations.get(final_activation)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Unknown `final_activation`: {final_activation!r}. Use None, a "
            f"keras.activations name such as 'softmax' or 'sigmoid', or a callable."
        ) from error
    return final_activation


def apply_final_activation(x, final_activation, data_format):
    """`final_activation` on the scores `x`, in float32, as layer `final_activation`.

    Softmax and log-softmax normalise over the channel axis, also for
    `channels_first` (where `keras.layers.Activation` would use the width).
    """
    if final_activation is None:
        return x
    function = keras.activations.get(final_activation)
    if data_format == "channels_first" and function is keras.activations.softmax:
        return layers.Softmax(axis=1, dtype="float32", name="final_activation")(x)
    if data_format == "channels_first" and function is keras.activations.log_softmax:
        x = layers.Permute((2, 3, 1), dtype="float32", name="final_activation_in")(x)
        x = layers.Activation(final_activation, dtype="float32", name="final_activation")(x)
        return layers.Permute((3, 1, 2), dtype="float32", name="final_activation_out")(x)
    return layers.Activation(final_activation, dtype="float32", name="final_activation")(x)


def spatial_shape(inputs, data_format):
    """The static (height, width) of an image tensor (ints or None)."""
    shape = inputs.shape
    return tuple(shape[1:3] if data_format == "channels_last" else shape[2:4])


def check_total_stride(inputs, data_format, total_stride, cause, input_shape):
    """Raises if a fixed height or width of `inputs` is below `total_stride`.

    `cause` names the argument responsible, e.g. "`depth`=5".
    """
    if any(size is not None and size < total_stride for size in spatial_shape(inputs, data_format)):
        raise ValueError(
            f"{cause} is too large for input_shape={input_shape}: the "
            f"network's total stride {total_stride} exceeds its height or width"
            f"{axis_order_hint(input_shape, data_format)}."
        )


def backbone_names():
    """The registered ResNet and ConvNeXt names, usable as backbones."""
    return [m for m in list_models() if m.startswith(BACKBONE_FAMILIES)]


def check_backbone(arg, value):
    """`value` must be a registered backbone name; the error lists them."""
    names = backbone_names()
    if not isinstance(value, str) or value not in names:
        raise ValueError(f"Unknown `{arg}`: {value!r}. Valid {arg}s: {', '.join(names)}.")
    return value


def backbone_features(x, backbone, weights, freeze, stages, data_format, name):
    """The outputs `stage{k}_output` (k in `stages`) of a headless backbone on `x`.

    The backbone is built for `x`'s shape and called as one nested
    `keras.Model` named `name`, trainable unless `freeze`.

    Returns:
        A list of tensors, one per entry of `stages`.
    """
    model = build_model(
        backbone,
        include_top=False,
        input_shape=tuple(x.shape[1:]),
        data_format=data_format,
        weights=weights,
    )
    features = [model.get_layer(f"stage{stage}_output").output for stage in stages]
    feature_model = keras.Model(model.input, features, name=name)
    feature_model.trainable = not freeze
    outputs = feature_model(x)
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
