"""Layers of keras_cvlec, one concept a module."""

from keras_cvlec.layers.bias_first_conv import (
    BiasFirstConv2D,
    BiasFirstConv2DTranspose,
    BiasFirstDepthwiseConv2D,
)
from keras_cvlec.layers.channel_layer_normalization import ChannelLayerNormalization
from keras_cvlec.layers.convnext_block import ConvNeXtBlock
from keras_cvlec.layers.layer_scale import LayerScale
from keras_cvlec.layers.resnet_blocks import (
    ResNetBasicBlock,
    ResNetBlock,
    ResNetBottleneckBlock,
)
from keras_cvlec.layers.stochastic_depth import StochasticDepth
from keras_cvlec.layers.unpooling import MaxPoolingWithArgmax2D, MaxUnpooling2D
