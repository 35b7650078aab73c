"""The image input of every builder, with its checks."""

import keras

from keras_cvlec.utils.validation import is_int

__all__ = [
    "DEFAULT_INPUT_SHAPE",
    "MAX_LIKELY_CHANNELS",
    "axis_order_hint",
    "image_input",
    "input_channels",
]

DEFAULT_INPUT_SHAPE = (None, None, 3)
# Channel counts of images, up to RGBA: a size this small where the other
# data format puts channels suggests that `input_shape` is in that order.
MAX_LIKELY_CHANNELS = 4


def image_input(input_shape, data_format, min_size, name="image"):
    """A `keras.Input` for images, after checking `input_shape`.

    Args:
        input_shape: `(height, width, channels)` for `channels_last` or
            `(channels, height, width)` for `channels_first`; height and width
            may be `None`. The default `(None, None, 3)` means 3-channel
            images of any size under either data format.
        data_format: `"channels_last"` or `"channels_first"`.
        min_size: the smallest height and width the network can take (its
            total stride).
        name: the input's name.

    Returns:
        A `keras.KerasTensor`.
    """
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must be a tuple of 3 entries (height, width, "
            f"channels), in the order of data_format={data_format!r}. "
            f"Received: input_shape={input_shape!r}"
        )
    input_shape = tuple(input_shape)
    if data_format == "channels_first" and input_shape == DEFAULT_INPUT_SHAPE:
        input_shape = (3, None, None)
    if data_format == "channels_last":
        *spatial, channels = input_shape
    else:
        channels, *spatial = input_shape
    if not is_int(channels) or channels < 1:
        raise ValueError(
            f"The channel dimension of `input_shape` must be an int >= 1 "
            f"(data_format={data_format!r}). Received: input_shape={input_shape}"
            f"{axis_order_hint(input_shape, data_format)}"
        )
    for size in spatial:
        if size is None:
            continue
        if not is_int(size):
            raise ValueError(
                f"Height and width in `input_shape` must be ints or None. "
                f"Received: input_shape={input_shape}"
            )
        if size < min_size:
            raise ValueError(
                f"Height and width in `input_shape` must be at least {min_size}, "
                f"the network's total stride. Received: input_shape={input_shape} "
                f"with data_format={data_format!r}"
                f"{axis_order_hint(input_shape, data_format)}"
            )
    return keras.Input(shape=input_shape, name=name)


def axis_order_hint(input_shape, data_format):
    """A sentence for an error about `input_shape` when it looks like the
    other data format's order (at most `MAX_LIKELY_CHANNELS` where that
    format puts channels, `None` or more at the other end), else `""`."""
    first, middle, last = input_shape
    if data_format == "channels_first":
        channels, spatial, suggestion = last, first, (last, first, middle)
        received, expected = "(height, width, channels)", "(channels, height, width)"
    else:
        channels, spatial, suggestion = first, last, (middle, last, first)
        received, expected = "(channels, height, width)", "(height, width, channels)"
    if (
        is_int(channels)
        and 1 <= channels <= MAX_LIKELY_CHANNELS
        and (spatial is None or (is_int(spatial) and spatial > MAX_LIKELY_CHANNELS))
    ):
        return (
            f". The axes look like {received}: data_format={data_format!r} "
            f"takes {expected}, e.g. input_shape={suggestion}"
        )
    return ""


def input_channels(inputs, data_format):
    """The channel count of an image input."""
    return inputs.shape[-1 if data_format == "channels_last" else 1]
