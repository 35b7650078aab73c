"""Pad images to a multiple of the network's stride, and crop back.

A U-Net halves the resolution `depth` times and doubles it again; when height
or width is not a multiple of `2 ** depth`, the skip connections no longer
line up (segmentation_models #1, #58; keras #10185). `PadToMultiple2D` pads
the input at the bottom/right up to the next multiple, `CropToMatch2D` cuts
the output back to the input's size. Both follow dynamic sizes, so one model
serves every input size.
"""

import keras
from keras import ops

from keras_cvlec.utils.validation import (
    check_positive_int,
    spatial_axes,
    standardize_data_format,
)

__all__ = ["CropToMatch2D", "PadToMultiple2D"]


@keras.saving.register_keras_serializable(package="keras_cvlec")
class PadToMultiple2D(keras.layers.Layer):
    """Zero-pads height and width at the end up to a multiple of `multiple`.

    Args:
        multiple: int >= 1.
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        **kwargs: base `keras.layers.Layer` arguments.

    Example:

    >>> PadToMultiple2D(16)(keras.ops.ones((1, 97, 131, 3))).shape
    (1, 112, 144, 3)
    """

    def __init__(self, multiple, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.multiple = check_positive_int("multiple", multiple)
        self.data_format = standardize_data_format(data_format)
        self.built = True

    def call(self, inputs):
        shape = ops.shape(inputs)
        pad_width = [[0, 0] for _ in range(len(inputs.shape))]
        for axis in spatial_axes(self.data_format):
            pad_width[axis][1] = (-shape[axis]) % self.multiple
        return ops.pad(inputs, pad_width)

    def compute_output_shape(self, input_shape):
        output_shape = list(input_shape)
        for axis in spatial_axes(self.data_format):
            size = input_shape[axis]
            if size is not None:
                output_shape[axis] = size + (-size) % self.multiple
        return tuple(output_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"multiple": self.multiple, "data_format": self.data_format})
        return config


@keras.saving.register_keras_serializable(package="keras_cvlec")
class CropToMatch2D(keras.layers.Layer):
    """Crops `inputs[0]` to the height and width of `inputs[1]` (top-left).

    The inverse of `PadToMultiple2D`: `CropToMatch2D()([output, image])`.

    Args:
        data_format: `"channels_last"` or `"channels_first"`; defaults to
            `keras.config.image_data_format()`.
        **kwargs: base `keras.layers.Layer` arguments.

    Example:

    >>> big, image = keras.ops.ones((1, 112, 144, 2)), keras.ops.ones((1, 97, 131, 3))
    >>> CropToMatch2D()([big, image]).shape
    (1, 97, 131, 2)
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.built = True

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                "CropToMatch2D expects a list [tensor, reference]. Received: "
                f"{type(inputs).__name__}"
            )
        tensor, reference = inputs
        size = list(ops.shape(tensor))
        for axis in spatial_axes(self.data_format):
            size[axis] = ops.shape(reference)[axis]
        return ops.slice(tensor, [0] * len(size), size)

    def compute_output_shape(self, input_shape):
        tensor_shape, reference_shape = input_shape
        output_shape = list(tensor_shape)
        for axis in spatial_axes(self.data_format):
            output_shape[axis] = reference_shape[axis]
        return tuple(output_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format})
        return config
