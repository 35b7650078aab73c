"""Layers of keras_cvlec, one concept a module."""

from keras_cvlec.layers import bias_first_conv as _bias_first_conv
from keras_cvlec.layers.channel_layer_normalization import ChannelLayerNormalization
from keras_cvlec.layers.convnext_block import ConvNeXtBlock
from keras_cvlec.layers.convolution import Conv2D, Conv2DTranspose, DepthwiseConv2D
from keras_cvlec.layers.layer_scale import LayerScale
from keras_cvlec.layers.pad_to_multiple import CropToMatch2D, PadToMultiple2D
from keras_cvlec.layers.resnet_blocks import (
    ResNetBasicBlock,
    ResNetBlock,
    ResNetBottleneckBlock,
)
from keras_cvlec.layers.stochastic_depth import StochasticDepth
from keras_cvlec.layers.unpooling import MaxPoolingWithArgmax2D, MaxUnpooling2D
from keras_cvlec.utils.deprecation import moved_names

__all__ = [
    "ChannelLayerNormalization",
    "Conv2D",
    "Conv2DTranspose",
    "ConvNeXtBlock",
    "CropToMatch2D",
    "DepthwiseConv2D",
    "LayerScale",
    "MaxPoolingWithArgmax2D",
    "MaxUnpooling2D",
    "PadToMultiple2D",
    "ResNetBasicBlock",
    "ResNetBlock",
    "ResNetBottleneckBlock",
    "StochasticDepth",
]


__getattr__ = moved_names(__name__, _bias_first_conv.DEPRECATED_NAMES)
