"""LayerScale: a learnable per-channel scale on a residual branch."""

import keras
from keras import ops

from keras_cvlec.utils.validation import (
    channel_axis,
    check_float,
    standardize_data_format,
)

__all__ = ["LayerScale"]


@keras.saving.register_keras_serializable(package="keras_cvlec")
class LayerScale(keras.layers.Layer):
    """Multiplies each channel by a learnable scale `gamma`.

    `gamma` starts at `init_value` (e.g. 1e-6 in ConvNeXt, Touvron et al.,
    2021, "Going deeper with Image Transformers"), so a freshly initialised
    residual branch contributes almost nothing and deep networks train stably.

    Args:
        init_value: positive float, the initial value of every scale.
        data_format: `"channels_last"` or `"channels_first"`: which axis holds
            the channels. Defaults to `keras.config.image_data_format()`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> layer = LayerScale(init_value=0.5)
    >>> keras.ops.convert_to_numpy(layer(keras.ops.ones((1, 2, 2, 3))))[0, 0, 0]
    array([0.5, 0.5, 0.5], dtype=float32)
    """

    def __init__(self, init_value, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.init_value = check_float("init_value", init_value, 0.0, inclusive=False)
        self.data_format = standardize_data_format(data_format)
        self.supports_masking = True

    def build(self, input_shape):
        axis = channel_axis(self.data_format)
        channels = input_shape[axis] if len(input_shape) >= 2 else None
        if channels is None:
            raise ValueError(
                f"LayerScale needs a known channel dimension. Received: "
                f"input_shape={input_shape} with data_format={self.data_format}"
            )
        self.gamma = self.add_weight(
            name="gamma",
            shape=(channels,),
            initializer=keras.initializers.Constant(self.init_value),
            trainable=True,
        )
        self._broadcast_shape = [1] * len(input_shape)
        self._broadcast_shape[axis] = channels

    def call(self, inputs):
        gamma = ops.cast(self.gamma, inputs.dtype)
        if self.data_format == "channels_first":
            gamma = ops.reshape(gamma, self._broadcast_shape)
        return inputs * gamma

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"init_value": self.init_value, "data_format": self.data_format})
        return config
