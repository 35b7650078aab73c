"""Small helpers of keras_cvlec: compute cost, argument checks, deprecated names."""

from keras_cvlec.utils.deprecation import moved_names
from keras_cvlec.utils.flops import count_macs, register_macs

__all__ = ["count_macs", "register_macs"]

__getattr__ = moved_names(__name__, {"count_flops": ("keras_cvlec.utils.count_macs", count_macs)})
