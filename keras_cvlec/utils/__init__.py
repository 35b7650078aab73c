"""Small helpers of keras_cvlec: compute cost, argument checks."""

from keras_cvlec.utils import flops as _flops
from keras_cvlec.utils.flops import count_macs, register_macs

__all__ = ["count_macs", "register_macs"]


def __getattr__(name):
    """`count_flops`, the deprecated name of `count_macs`, with a warning."""
    if name == "count_flops":
        return _flops._deprecated_count_flops(stacklevel=2)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
