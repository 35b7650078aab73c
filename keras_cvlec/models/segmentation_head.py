"""The two ends every dense-prediction builder shares (U-Net, SegNet, FCN,
autoencoder): the input padded to a multiple of the network's total stride,
and the head that maps features to per-pixel scores, crops them back to the
input's size and applies the final activation. Together they let one model
take images of any height and width."""

import keras
from keras import layers

from keras_cvlec.layers import convolution
from keras_cvlec.layers.pad_to_multiple import CropToMatch2D, PadToMultiple2D
from keras_cvlec.models.inputs import axis_order_hint
from keras_cvlec.utils.validation import spatial_axes

__all__ = [
    "check_final_activation",
    "pad_to_total_stride",
    "segmentation_head",
    "segmentation_output",
]


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


def pad_to_total_stride(inputs, total_stride, data_format, *, cause, input_shape):
    """`inputs` zero-padded to a multiple of `total_stride` (layer `pad`).

    Args:
        inputs: the model's image input.
        total_stride: the network's total stride.
        data_format: `"channels_last"` or `"channels_first"`.
        cause: the argument that sets `total_stride`, for the error, e.g.
            "`depth`=5".
        input_shape: the builder's `input_shape`, for the error.

    Returns:
        The padded tensor.

    Raises:
        ValueError: if a fixed height or width of `inputs` is below
            `total_stride`.
    """
    sizes = [inputs.shape[axis] for axis in spatial_axes(data_format)]
    if any(size is not None and size < total_stride for size in sizes):
        raise ValueError(
            f"{cause} is too large for input_shape={input_shape}: the "
            f"network's total stride {total_stride} exceeds its height or width"
            f"{axis_order_hint(input_shape, data_format)}."
        )
    return PadToMultiple2D(total_stride, data_format=data_format, name="pad")(inputs)


def segmentation_head(x, reference, channels, final_activation, data_format):
    """A 1x1 convolution `head` to `channels` scores, then `segmentation_output`.

    Args:
        x: the last feature map, at the padded input's resolution.
        reference: the model's (unpadded) input.
        channels: the number of scores per pixel (the classes, or the
            autoencoder's image channels).
        final_activation: `None` (scores as they are), or an activation.
        data_format: `"channels_last"` or `"channels_first"`.

    Returns:
        The model's output, shaped like `reference` with `channels` channels.
    """
    x = convolution.Conv2D(channels, 1, data_format=data_format, dtype="float32", name="head")(x)
    return segmentation_output(x, reference, final_activation, data_format)


def segmentation_output(x, reference, final_activation, data_format):
    """The scores `x` cropped to `reference`'s size (`crop`), then
    `final_activation` (layer `final_activation`), both in float32.

    Softmax and log-softmax normalise over the channel axis, also for
    `channels_first` (where `keras.layers.Activation` would use the width).
    """
    x = CropToMatch2D(data_format=data_format, dtype="float32", name="crop")([x, reference])
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
