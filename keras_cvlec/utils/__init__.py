"""Small helpers of keras_cvlec: compute cost, models built for their structure,
argument checks, deprecated names."""

from keras_cvlec.utils.deprecation import moved_names
from keras_cvlec.utils.flops import count_macs, register_macs
from keras_cvlec.utils.structure import structure_only

__all__ = ["count_macs", "register_macs", "structure_only"]

__getattr__ = moved_names(__name__, {"count_flops": ("keras_cvlec.utils.count_macs", count_macs)})
