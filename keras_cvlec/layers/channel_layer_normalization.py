"""Layer normalization over the channel axis of an image, for either data format.

ConvNeXt's stem and downsampling layers use it (the official implementation
defines the same helper next to its block); so do the U-Net and SegNet
decoders with `norm="layer"`.
"""

import keras
from keras import ops

from keras_cvlec.utils.validation import (
    check_float,
    known_channels,
    standardize_data_format,
)

__all__ = ["EPSILON", "ChannelLayerNormalization"]

EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="keras_cvlec")
class ChannelLayerNormalization(keras.layers.Layer):
    """Layer normalization over the channel axis of an image batch.

    Each pixel's channel vector is normalised to zero mean and unit variance,
    then scaled by `gamma` and shifted by `beta` (one per channel). Equal to
    `keras.layers.LayerNormalization(axis=-1)` for `channels_last` (and with
    the same weights, so weights transfer between them); for
    `channels_first` it reduces over axis 1, which
    `keras.layers.LayerNormalization(axis=1)` gets wrong on the torch backend
    in Keras 3.15 (it hands `F.layer_norm` a leading axis, which normalises
    trailing axes only). Statistics are computed in float32 under mixed
    precision.

    `channels_last` calls `ops.layer_normalization` over the last axis, the
    op of the stock layer: on torch one fused kernel (`F.layer_norm`), whose
    forward and backward take 2.5x less CPU time than the mean, variance and
    elementwise ops of the `channels_first` path (ConvNeXt-T's four such
    norms, 64², batch 8: 2.1 against 5.2 ms a training step); on JAX as fast
    as those ops, on TensorFlow 0.7 ms slower (under 0.2 % of its step). Both
    paths compute the same function; outputs differ by float32 rounding.

    Args:
        epsilon: float > 0 added to the variance (1e-6 in ConvNeXt).
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        **kwargs: base `keras.layers.Layer` arguments.

    Example:

    >>> norm = ChannelLayerNormalization(data_format="channels_first")
    >>> norm(keras.ops.ones((2, 8, 5, 5))).shape
    (2, 8, 5, 5)
    """

    def __init__(self, epsilon=EPSILON, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = check_float("epsilon", epsilon, 0.0, inclusive=False)
        self.data_format = standardize_data_format(data_format)
        self.supports_masking = True

    def build(self, input_shape):
        channels = known_channels(self, input_shape, self.data_format)
        self.gamma = self.add_weight(
            name="gamma", shape=(channels,), initializer="ones", autocast=False
        )
        self.beta = self.add_weight(
            name="beta", shape=(channels,), initializer="zeros", autocast=False
        )

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.data_format == "channels_last":
            gamma, beta = (ops.cast(weight, "float32") for weight in (self.gamma, self.beta))
            x = ops.layer_normalization(x, gamma, beta, axis=-1, epsilon=self.epsilon)
            return ops.cast(x, self.compute_dtype)
        mean, variance = ops.moments(x, axes=[1], keepdims=True)
        gamma = ops.reshape(self.gamma, (1, -1, 1, 1))
        beta = ops.reshape(self.beta, (1, -1, 1, 1))
        x = (x - mean) * ops.rsqrt(variance + self.epsilon)
        x = x * ops.cast(gamma, "float32") + ops.cast(beta, "float32")
        return ops.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "data_format": self.data_format})
        return config
