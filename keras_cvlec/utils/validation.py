"""Argument checks shared by layers and builders.

Every check raises an error that names the argument, the received value and
what is allowed, and returns the value unchanged (or as the plain Python type
it was checked as), so callers can write `self.rate = check_rate("rate", rate)`.
"""

import functools
import math
import numbers
import os
import warnings

import keras

__all__ = [
    "channel_axis",
    "check_bool",
    "check_choice",
    "check_float",
    "check_image_size",
    "check_imagenet_channels",
    "check_int_pair",
    "check_optional_dict",
    "check_path",
    "check_positive_int",
    "check_rate",
    "check_seed",
    "is_int",
    "known_channels",
    "renamed_arguments",
    "spatial_axes",
    "standardize_data_format",
]


def check_rate(name, value):
    """A probability in `[0, 1)`, returned as a Python float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a float in [0, 1). Received: {name}={value!r} "
            f"of type {type(value).__name__}"
        )
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be in [0, 1). Received: {name}={value}")
    return float(value)


def check_float(name, value, minimum, inclusive=True):
    """A finite real number `>= minimum` (or `> minimum`), returned as a
    float; NaN and infinities are refused."""
    bound = ">=" if inclusive else ">"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{name}` must be a float {bound} {minimum}. Received: {name}={value!r} "
            f"of type {type(value).__name__}"
        )
    if not math.isfinite(value):
        raise ValueError(
            f"`{name}` must be a finite float {bound} {minimum}. Received: {name}={value}"
        )
    if not (value >= minimum if inclusive else value > minimum):
        raise ValueError(f"`{name}` must be {bound} {minimum}. Received: {name}={value}")
    return float(value)


def check_positive_int(name, value, minimum=1):
    """An int `>= minimum` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be an int >= {minimum}. Received: {name}={value!r} "
            f"of type {type(value).__name__}"
        )
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}. Received: {name}={value}")
    return int(value)


# Keras's random state is int32; NumPy's generators take no negative seed.
MAX_SEED = 2**31 - 1


def check_seed(name, value, maximum=MAX_SEED):
    """`None` or an int in `[0, maximum]` (`maximum=None`: a seed NumPy
    alone takes, any int >= 0)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{name}` must be None or an int. Received: {name}={value!r} "
            f"of type {type(value).__name__}"
        )
    if value < 0 or (maximum is not None and value > maximum):
        allowed = "an int >= 0" if maximum is None else f"an int in [0, {maximum}]"
        raise ValueError(f"`{name}` must be None or {allowed}. Received: {name}={value}")
    return int(value)


def check_choice(name, value, allowed):
    """One of `allowed`; the error lists them all."""
    if value not in allowed:
        choices = ", ".join(repr(choice) for choice in allowed)
        raise ValueError(f"Unknown `{name}`: {value!r}. Allowed values: {choices}.")
    return value


def standardize_data_format(data_format):
    """`data_format`, or `keras.config.image_data_format()` when None."""
    if data_format is None:
        return keras.config.image_data_format()
    return check_choice("data_format", data_format, ("channels_last", "channels_first"))


def channel_axis(data_format):
    """-1 for `channels_last`, 1 for `channels_first`."""
    return -1 if data_format == "channels_last" else 1


def spatial_axes(data_format):
    """The (height, width) axes of a 4D tensor: `(1, 2)` for `channels_last`,
    `(2, 3)` for `channels_first`."""
    return (1, 2) if data_format == "channels_last" else (2, 3)


def is_int(value):
    """Whether `value` is an int (any `numbers.Integral`); bools are not."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int_pair(name, value, allowed="an int >= 1 or a pair of ints >= 1"):
    """An int (used twice) or a pair of ints, each >= 1, as a tuple of 2 ints.

    `allowed` is the phrase the error uses for what is accepted. An element
    that is not an int is a TypeError; a sequence of another length or ints
    < 1 a ValueError.
    """
    pair = value if isinstance(value, (tuple, list)) else (value, value)
    if not all(is_int(item) for item in pair):
        raise TypeError(f"`{name}` must be {allowed}. Received: {name}={value!r}")
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"`{name}` must be {allowed}. Received: {name}={value!r}")
    return (int(pair[0]), int(pair[1]))


def check_image_size(image_size, default=None):
    """`image_size` as a `(height, width)` tuple of ints >= 1.

    Args:
        image_size: None, an int (a square size) or a `(height, width)` pair
            of ints; bools are refused.
        default: what None resolves to (None, an int or a pair).

    Returns:
        A `(height, width)` tuple of ints, or None when both `image_size` and
        `default` are None.
    """
    if image_size is None:
        image_size = default
    if image_size is None:
        return None
    allowed = "None, an int >= 1 or a (height, width) pair of ints >= 1"
    return check_int_pair("image_size", image_size, allowed)


def check_bool(name, value):
    """True or False (not a truthy value), returned unchanged."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return value


def known_channels(layer, input_shape, data_format):
    """The channel count of a 4D `input_shape`, or an error naming `layer`."""
    channels = input_shape[channel_axis(data_format)]
    if len(input_shape) != 4 or channels is None:
        raise ValueError(
            f"{type(layer).__name__} needs a 4D input with a known channel "
            f"dimension. Received: input_shape={tuple(input_shape)} with "
            f"data_format={data_format}"
        )
    return channels


def check_imagenet_channels(name, weights, channels, input_shape):
    """3 input `channels` when `weights` (the argument `name`) is
    `"imagenet"`: the ImageNet weights take RGB images."""
    if isinstance(weights, str) and weights == "imagenet" and channels != 3:
        raise ValueError(
            f"`{name}='imagenet'` needs 3 input channels. Received: input_shape={input_shape}"
        )
    return weights


def renamed_arguments(**renames):
    """Decorator: keyword arguments renamed `old=new` still work, with a
    `DeprecationWarning` naming the new keyword; passing both is a TypeError.

    Example:

    >>> @renamed_arguments(encoder="backbone")
    ... def build(*, backbone=None):
    ...     return backbone
    >>> build(encoder="resnet18")
    'resnet18'
    """

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            for old, new in renames.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(
                        f"{function.__name__}() got both `{old}` and `{new}`; `{old}` is "
                        f"the deprecated name of `{new}`: pass only `{new}`. Received: "
                        f"{old}={kwargs[old]!r}, {new}={kwargs[new]!r}"
                    )
                warnings.warn(
                    f"{function.__name__}(): `{old}` is deprecated, use `{new}` instead.",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper

    return decorate


def check_path(name, value):
    """A path (str or os.PathLike), returned as a str."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"`{name}` must be a path (str or os.PathLike). Received: {name}={value!r}")
    return os.fspath(value)


def check_optional_dict(name, value):
    """None or a dict, returned unchanged."""
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"`{name}` must be None or a dict. Received: {name}={value!r}")
    return value
