"""Convolutions whose bias add is right for `channels_first` on TensorFlow.

keras 3.15's TensorFlow `ops.add(outputs, bias)` becomes `tf.nn.bias_add` and
guesses NHWC whenever the last axis has the bias's size, so a `channels_first`
output whose width equals its channels (e.g. 64 filters on a 64x64 map) gets
the bias added along the width by Keras's own `Conv2D`, `DepthwiseConv2D` and
`Conv2DTranspose`. The layers here add it as `bias + outputs`, a plain
broadcasting add on every backend. They have the same weights (`kernel`,
`bias`), arguments and names as the Keras layers they extend.
"""

import keras
from keras import ops


class _BiasFirst:
    """Mixin: `call` = `self._convolve(inputs)`, then `bias + outputs`, then
    the activation."""

    def call(self, inputs):
        self._check_covers_kernel(inputs.shape)
        outputs = self._convolve(inputs)
        if self.use_bias:
            bias_shape = [1] * len(outputs.shape)
            bias_shape[-1 if self.data_format == "channels_last" else 1] = -1
            outputs = ops.add(ops.reshape(self.bias, bias_shape), outputs)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def _check_covers_kernel(self, input_shape):
        """A `"valid"` convolution of an input smaller than its kernel is empty,
        and the backends then fail later with an unrelated shape error. Sizes
        unknown at trace time are not checked."""
        if self.padding != "valid" or isinstance(self, keras.layers.Conv2DTranspose):
            return
        axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        size = tuple(input_shape[axis] for axis in axes)
        kernel = tuple(
            (k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate)
        )
        if any(s is not None and s < k for s, k in zip(size, kernel)):
            raise ValueError(
                f"Layer {self.name!r} received an input of spatial size "
                f"{size[0]}x{size[1]}, smaller than its {kernel[0]}x{kernel[1]} "
                "kernel (padding='valid'): the image is too small for the "
                "network's total stride. Use larger images, or build the model "
                "with a fixed `input_shape` to have the minimum size checked "
                f"when it is built. Received: inputs.shape={tuple(input_shape)}"
            )


@keras.saving.register_keras_serializable(package="keras_cvlec")
class BiasFirstConv2D(_BiasFirst, keras.layers.Conv2D):
    """`keras.layers.Conv2D` with the bias added as `bias + outputs`.

    Example:

    >>> conv = BiasFirstConv2D(8, 3, padding="same", data_format="channels_first")
    >>> conv(np.zeros((1, 3, 8, 8))).shape
    (1, 8, 8, 8)
    """

    def _convolve(self, inputs):
        return self.convolution_op(inputs, self.kernel)


@keras.saving.register_keras_serializable(package="keras_cvlec")
class BiasFirstDepthwiseConv2D(_BiasFirst, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` with the bias added as `bias + outputs`.

    Example:

    >>> conv = BiasFirstDepthwiseConv2D(7, padding="same", data_format="channels_first")
    >>> conv(np.zeros((1, 8, 8, 8))).shape
    (1, 8, 8, 8)
    """

    def _convolve(self, inputs):
        return ops.depthwise_conv(
            inputs,
            self.kernel,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )


@keras.saving.register_keras_serializable(package="keras_cvlec")
class BiasFirstConv2DTranspose(_BiasFirst, keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` with the bias added as `bias + outputs`.

    Example:

    >>> conv = BiasFirstConv2DTranspose(4, 2, strides=2, data_format="channels_first")
    >>> conv(np.zeros((1, 3, 4, 4))).shape
    (1, 4, 8, 8)
    """

    def _convolve(self, inputs):
        return ops.conv_transpose(
            inputs,
            self.kernel,
            strides=list(self.strides),
            padding=self.padding,
            output_padding=self.output_padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
