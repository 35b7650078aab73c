"""Keras's 2D convolutions, right on every backend and data format.

`Conv2D`, `DepthwiseConv2D` and `Conv2DTranspose` are drop-in replacements
of the Keras layers of the same names: same arguments, weights (`kernel`,
`bias`) and config. They differ in two ways:

- The bias is added as `bias + outputs`, a plain broadcasting add. Keras
  3.15's TensorFlow backend turns the `ops.add(outputs, bias)` of Keras's own
  convolutions into `tf.nn.bias_add`, which guesses NHWC whenever the last
  axis has the bias's size: a `channels_first` output whose width equals its
  channels (e.g. 64 filters on a 64x64 map) gets its bias added along the
  width. This is the one place that records that bug; the rest of the
  package refers here.
- A `"valid"` convolution of an input smaller than its (dilated) kernel
  raises a `ValueError` naming the layer and both sizes, where the backends
  fail later with an unrelated shape error.
- On JAX, a `Conv2DTranspose` whose kernel does not overlap itself
  (`kernel_size == strides`, as U-Net's 2x2 stride-2 up-convolution) is
  computed as one matmul whose outputs are laid out pixel by pixel: the same
  numbers, 20-70x faster than XLA's transposed convolution on a CPU
  (benchmarks/xla_cpu_gap.py). TensorFlow and PyTorch run their own, which
  are as fast as the matmul.
- On JAX on a CPU, a `DepthwiseConv2D` of stride 1 is computed as a sum of
  shifted, scaled copies of its input, which XLA fuses into one loop: 2.3x
  the training speed of ConvNeXt-T (64², batch 8) over XLA's grouped
  convolution, whose CPU code is 10-20x slower than TensorFlow's. The sums
  are in another order: outputs differ by float32 rounding (about 1e-6).

Until issue 14 these layers were called `BiasFirstConv2D`,
`BiasFirstDepthwiseConv2D` and `BiasFirstConv2DTranspose`; files saved with
those names still load (see `keras_cvlec.layers.bias_first_conv`).
"""

import keras
from keras import ops

from keras_cvlec.utils.validation import channel_axis, spatial_axes

__all__ = ["Conv2D", "Conv2DTranspose", "DepthwiseConv2D"]


class _BroadcastBias:
    """Mixin: `call` = `self._convolve(inputs)`, then `bias + outputs`, then
    the activation."""

    def call(self, inputs):
        self._check_covers_kernel(inputs.shape)
        outputs = self._convolve(inputs)
        if self.use_bias:
            bias_shape = [1] * len(outputs.shape)
            bias_shape[channel_axis(self.data_format)] = -1
            outputs = ops.add(ops.reshape(self.bias, bias_shape), outputs)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def _check_covers_kernel(self, input_shape):
        """Sizes unknown at trace time are not checked."""
        if self.padding != "valid" or isinstance(self, keras.layers.Conv2DTranspose):
            return
        size = tuple(input_shape[axis] for axis in spatial_axes(self.data_format))
        kernel = tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate))
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
class Conv2D(_BroadcastBias, keras.layers.Conv2D):
    """`keras.layers.Conv2D`, right on every backend and data format.

    See the module docstring for how it differs.

    Example:

    >>> conv = Conv2D(8, 3, padding="same", data_format="channels_first")
    >>> conv(np.zeros((1, 3, 8, 8))).shape
    (1, 8, 8, 8)
    """

    def _convolve(self, inputs):
        return self.convolution_op(inputs, self.kernel)


@keras.saving.register_keras_serializable(package="keras_cvlec")
class DepthwiseConv2D(_BroadcastBias, keras.layers.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D`, right on every backend and data format.

    See the module docstring for how it differs.

    Example:

    >>> conv = DepthwiseConv2D(7, padding="same", data_format="channels_first")
    >>> conv(np.zeros((1, 8, 8, 8))).shape
    (1, 8, 8, 8)
    """

    def _convolve(self, inputs):
        if self._is_shifted_sum():
            return _shifted_depthwise(
                inputs, self.kernel, self.padding, self.dilation_rate, self.data_format
            )
        return ops.depthwise_conv(
            inputs,
            self.kernel,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )

    def _is_shifted_sum(self):
        """Whether `_convolve` is a sum of shifted copies (see the module
        docstring): stride 1, on JAX on a CPU (XLA's convolution on an
        accelerator is cuDNN's or the TPU's, and was not measured)."""
        return (
            keras.backend.backend() == "jax"
            and tuple(self.strides) == (1, 1)
            and all(device.startswith("cpu") for device in keras.distribution.list_devices())
        )


@keras.saving.register_keras_serializable(package="keras_cvlec")
class Conv2DTranspose(_BroadcastBias, keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose`, right on every backend and data format.

    See the module docstring for how it differs.

    Example:

    >>> conv = Conv2DTranspose(4, 2, strides=2, data_format="channels_first")
    >>> conv(np.zeros((1, 3, 4, 4))).shape
    (1, 4, 8, 8)
    """

    def _convolve(self, inputs):
        if self._is_matmul():
            return _non_overlapping_transpose(inputs, self.kernel, self.data_format)
        return ops.conv_transpose(
            inputs,
            self.kernel,
            strides=list(self.strides),
            padding=self.padding,
            output_padding=self.output_padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )

    def _is_matmul(self):
        """Whether `_convolve` is a matmul (see the module docstring): a
        kernel that does not overlap itself, on JAX. `"same"` and `"valid"`
        padding agree when the kernel size is the stride."""
        return (
            keras.backend.backend() == "jax"
            and tuple(self.kernel_size) == tuple(self.strides)
            and tuple(self.dilation_rate) == (1, 1)
            and self.output_padding is None
        )


def _shifted_depthwise(inputs, kernel, padding, dilation_rate, data_format):
    """The depthwise convolution of stride 1 as `sum over (i, j) of
    inputs shifted by (i, j) * kernel[i, j]`."""
    inputs = ops.convert_to_tensor(inputs)
    kernel_height, kernel_width, channels, multiplier = kernel.shape
    (row_step, column_step), size_axes = dilation_rate, spatial_axes(data_format)
    if padding == "same":
        pads = [(0, 0)] * 4
        for axis, size, step in zip(size_axes, (kernel_height, kernel_width), dilation_rate):
            total = (size - 1) * step
            pads[axis] = (total // 2, total - total // 2)
        inputs = ops.pad(inputs, pads)
    axis = channel_axis(data_format)
    if multiplier > 1:  # output channel c * multiplier + m reads input channel c
        inputs = ops.repeat(inputs, multiplier, axis=axis)
    kernel = ops.reshape(kernel, (kernel_height, kernel_width, channels * multiplier))
    padded_height, padded_width = (ops.shape(inputs)[size_axis] for size_axis in size_axes)
    height = padded_height - (kernel_height - 1) * row_step
    width = padded_width - (kernel_width - 1) * column_step
    weight_shape = [1, 1, 1, 1]
    weight_shape[axis] = channels * multiplier
    outputs = 0
    for i in range(kernel_height):
        for j in range(kernel_width):
            rows = slice(i * row_step, i * row_step + height)
            columns = slice(j * column_step, j * column_step + width)
            window = [slice(None)] * 4
            window[size_axes[0]], window[size_axes[1]] = rows, columns
            weight = ops.reshape(kernel[i, j], weight_shape)
            outputs = outputs + inputs[tuple(window)] * weight
    return outputs


def _non_overlapping_transpose(inputs, kernel, data_format):
    """The transposed convolution of stride `kernel.shape[:2]`: each input
    pixel times the kernel, `(kh, kw, filters, channels)`, gives its own
    `kh x kw` block of output pixels."""
    kernel_height, kernel_width, filters, _ = kernel.shape
    batch, *size = ops.shape(inputs)
    if data_format == "channels_last":
        height, width = size[0], size[1]
        blocks = ops.einsum("nhwc,ijoc->nhiwjo", inputs, kernel)
        return ops.reshape(blocks, (batch, height * kernel_height, width * kernel_width, filters))
    height, width = size[1], size[2]
    blocks = ops.einsum("nchw,ijoc->nohiwj", inputs, kernel)
    return ops.reshape(blocks, (batch, filters, height * kernel_height, width * kernel_width))
