"""Residual blocks of ResNet (He et al., 2016) as Keras layers.

Three published versions share one implementation, chosen by `version`:

- `"v1"`: keras.applications `ResNet50/101/152`: post-activation, stride on
  the first convolution of the branch, biases on every convolution, batch
  norm epsilon 1.001e-5.
- `"v1.5"`: torchvision `resnet18 ... resnet152`: post-activation, stride on
  the 3x3 convolution, no convolution biases, batch norm epsilon 1e-5 and
  momentum 0.9 (PyTorch's 0.1).
- `"v2"`: keras.applications `ResNet50V2/101V2/152V2` (He et al., 2016,
  "Identity Mappings in Deep Residual Networks"): pre-activation, stride on
  the 3x3 convolution, the branch's last convolution has a bias and no norm.

Strided 3x3 convolutions pad one pixel on each side explicitly (as PyTorch
does) instead of Keras's asymmetric `"same"` padding, so outputs agree with
torchvision on every backend.
"""

import collections

import keras
from keras import ops

from keras_cvlec.layers.bias_first_conv import LEGACY_CLASSES
from keras_cvlec.layers.stochastic_depth import StochasticDepth
from keras_cvlec.utils.validation import (
    channel_axis,
    check_choice,
    check_positive_int,
    check_rate,
    check_seed,
    spatial_axes,
    standardize_data_format,
)

__all__ = [
    "RESNET_VERSIONS",
    "ResNetBasicBlock",
    "ResNetBlock",
    "ResNetBottleneckBlock",
    "ResNetVersion",
    "resnet_batch_norm",
]

ResNetVersion = collections.namedtuple(
    "ResNetVersion",
    ["preactivation", "conv_bias", "stride_on_3x3", "epsilon", "momentum"],
)

RESNET_VERSIONS = {
    "v1": ResNetVersion(False, True, False, 1.001e-5, 0.99),
    "v1.5": ResNetVersion(False, False, True, 1e-5, 0.9),
    "v2": ResNetVersion(True, False, True, 1.001e-5, 0.99),
}


def resnet_batch_norm(version, data_format, name, dtype=None):
    """The `BatchNormalization` of a ResNet `version` (epsilon, momentum)."""
    settings = RESNET_VERSIONS[version]
    return keras.layers.BatchNormalization(
        axis=channel_axis(data_format),
        epsilon=settings.epsilon,
        momentum=settings.momentum,
        dtype=dtype,
        name=name,
    )


class ResNetBlock(keras.layers.Layer):
    """Base of the residual blocks; subclasses set the branch's kernels.

    Args:
        filters: int, the width of the branch's convolutions. The block
            outputs `filters * expansion` channels.
        strides: 1 or 2, the block's spatial stride.
        version: `"v1"`, `"v1.5"` or `"v2"` (see the module docstring).
        drop_path_rate: float in `[0, 1)`, the stochastic-depth rate of the
            residual branch.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        seed: optional int seed of the stochastic depth.
        **kwargs: base `keras.layers.Layer` arguments.

    The shortcut is the identity when the shape is unchanged, and a strided
    1x1 convolution (plus batch norm in v1/v1.5) when the channels change, or
    the stride does in v1/v1.5. A v2 block that only changes the stride
    subsamples its input with a 1x1 max pooling, as keras.applications does.
    """

    expansion = 1
    kernel_sizes = ()

    def __init__(
        self,
        filters,
        strides=1,
        version="v1",
        drop_path_rate=0.0,
        data_format=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.strides = check_choice("strides", strides, (1, 2))
        self.version = check_choice("version", version, tuple(RESNET_VERSIONS))
        self.drop_path_rate = check_rate("drop_path_rate", drop_path_rate)
        self.data_format = standardize_data_format(data_format)
        self.seed = check_seed("seed", seed)
        self.channel_axis = channel_axis(self.data_format)
        self.output_channels = self.filters * self.expansion
        self.drop_path = StochasticDepth(
            self.drop_path_rate, seed=seed, dtype=self.dtype_policy, name="drop_path"
        )

    def _conv(self, filters, kernel_size, strides, use_bias, name):
        # `keras_cvlec.layers.Conv2D` under its old class name: `.keras` files
        # address the convolutions in `branch_convs` (a list) by class name.
        return LEGACY_CLASSES["BiasFirstConv2D"](
            filters,
            kernel_size,
            strides=strides,
            padding="same" if strides == 1 else "valid",
            use_bias=use_bias,
            kernel_initializer="he_normal",
            data_format=self.data_format,
            dtype=self.dtype_policy,
            name=name,
        )

    def _norm(self, name):
        return resnet_batch_norm(self.version, self.data_format, name, dtype=self.dtype_policy)

    def build(self, input_shape):
        settings = RESNET_VERSIONS[self.version]
        input_channels = input_shape[self.channel_axis]
        if input_channels is None:
            raise ValueError(
                f"{type(self).__name__} needs a known channel dimension. "
                f"Received: input_shape={tuple(input_shape)} with "
                f"data_format={self.data_format}"
            )
        self.stride_index = self.kernel_sizes.index(3) if settings.stride_on_3x3 else 0
        num_convs = len(self.kernel_sizes)

        self.preact_norm = self._norm("preact_bn") if settings.preactivation else None
        self.branch_convs, self.branch_norms = [], []
        self.stride_padding = None
        shape = tuple(input_shape)
        for index, kernel_size in enumerate(self.kernel_sizes):
            is_last = index == num_convs - 1
            has_norm = not (settings.preactivation and is_last)
            strides = self.strides if index == self.stride_index else 1
            if strides > 1 and kernel_size > 1:
                self.stride_padding = keras.layers.ZeroPadding2D(
                    kernel_size // 2,
                    data_format=self.data_format,
                    dtype=self.dtype_policy,
                    name="stride_pad",
                )
                self.stride_padding.build(shape)
                shape = self.stride_padding.compute_output_shape(shape)
            filters = self.output_channels if is_last else self.filters
            conv = self._conv(
                filters,
                kernel_size,
                strides,
                use_bias=settings.conv_bias or not has_norm,
                name=f"conv{index + 1}",
            )
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            self.branch_convs.append(conv)
            if has_norm:
                norm = self._norm(f"bn{index + 1}")
                norm.build(shape)
                self.branch_norms.append(norm)

        needs_projection = input_channels != self.output_channels or (
            self.strides > 1 and not settings.preactivation
        )
        self.shortcut_conv = self.shortcut_norm = self.shortcut_pool = None
        if needs_projection:
            self.shortcut_conv = self._conv(
                self.output_channels,
                1,
                self.strides,
                use_bias=settings.conv_bias or settings.preactivation,
                name="shortcut_conv",
            )
            self.shortcut_conv.build(input_shape)
            if not settings.preactivation:
                self.shortcut_norm = self._norm("shortcut_bn")
                self.shortcut_norm.build(self.compute_output_shape(input_shape))
        elif self.strides > 1:
            self.shortcut_pool = keras.layers.MaxPooling2D(
                1,
                strides=self.strides,
                data_format=self.data_format,
                dtype=self.dtype_policy,
                name="shortcut_pool",
            )
        if self.preact_norm is not None:
            self.preact_norm.build(input_shape)

    def call(self, inputs, training=None):
        x = inputs
        if self.preact_norm is not None:
            x = ops.relu(self.preact_norm(x, training=training))
        if self.shortcut_conv is not None:
            shortcut = self.shortcut_conv(x)
            if self.shortcut_norm is not None:
                shortcut = self.shortcut_norm(shortcut, training=training)
        elif self.shortcut_pool is not None:
            shortcut = self.shortcut_pool(inputs)
        else:
            shortcut = inputs

        last_index = len(self.branch_convs) - 1
        for index, conv in enumerate(self.branch_convs):
            if index == self.stride_index and self.stride_padding is not None:
                x = self.stride_padding(x)
            x = conv(x)
            if index < len(self.branch_norms):
                x = self.branch_norms[index](x, training=training)
            if index < last_index:
                x = ops.relu(x)
        x = shortcut + self.drop_path(x, training=training)
        if self.preact_norm is None:
            x = ops.relu(x)
        return x

    def compute_output_shape(self, input_shape):
        output_shape = list(input_shape)
        for axis in spatial_axes(self.data_format):
            size = input_shape[axis]
            output_shape[axis] = None if size is None else -(-size // self.strides)
        output_shape[self.channel_axis] = self.output_channels
        return tuple(output_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "strides": self.strides,
                "version": self.version,
                "drop_path_rate": self.drop_path_rate,
                "data_format": self.data_format,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_cvlec")
class ResNetBasicBlock(ResNetBlock):
    """Two 3x3 convolutions and a shortcut: the block of ResNet-18 and -34.

    See `ResNetBlock` for the arguments. Outputs `filters` channels.

    Example:

    >>> block = ResNetBasicBlock(64, strides=2, version="v1.5")
    >>> block(keras.ops.ones((1, 32, 32, 64))).shape
    (1, 16, 16, 64)
    """

    expansion = 1
    kernel_sizes = (3, 3)


@keras.saving.register_keras_serializable(package="keras_cvlec")
class ResNetBottleneckBlock(ResNetBlock):
    """1x1 reduce, 3x3, 1x1 expand, and a shortcut: ResNet-50 and deeper.

    See `ResNetBlock` for the arguments. Outputs `4 * filters` channels.

    Example:

    >>> block = ResNetBottleneckBlock(64, version="v1")
    >>> block(keras.ops.ones((1, 56, 56, 64))).shape
    (1, 56, 56, 256)
    """

    expansion = 4
    kernel_sizes = (1, 3, 1)
