"""Keras's 2D convolutions, right on every backend and data format.

`Conv2D`, `DepthwiseConv2D` and `Conv2DTranspose` are drop-in replacements
of the Keras layers of the same names: same arguments, weights (`kernel`,
`bias`) and config. They differ in three ways, and in speed on JAX:

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
- A `"channels_first"` `Conv2D` or `Conv2DTranspose` runs on TensorFlow on
  any CPU: its input is transposed to `"channels_last"` and back where
  TensorFlow's CPU kernels take NHWC only (`_in_supported_format`).

On JAX on a CPU they compute some convolutions as matmuls or fused
element-wise sums, which XLA's CPU code runs far faster than its
convolutions (benchmarks/xla_cpu_gap.py); on torch on a CPU, `Conv2D`'s
matmuls too, as Keras-torch copies (permutes) every kernel it convolves,
forward and backward (benchmarks/torch_gap.py). TensorFlow, and JAX and
torch on an accelerator, run the backend's convolution. The numbers are
the same within float32 rounding (the sums are in another order):

- `Conv2DTranspose` whose kernel does not overlap itself (`kernel_size ==
  strides`, U-Net's 2x2 stride-2 up-convolution): one matmul whose outputs
  are laid out pixel by pixel, 20-70x faster.
- `DepthwiseConv2D` of stride 1: a sum of shifted, scaled copies of the
  input, fused into one loop; ConvNeXt-T trains 2.3x faster (64², batch 8).
  Its gradients are given by hand (`ops.custom_gradient`), as autodiff's
  are 49 slices and reductions that XLA runs one by one: the input's is the
  same sum over the upstream gradient with the kernel flipped, the
  kernel's one matmul per channel and kernel row (1.5-3.4x faster
  backward; ConvNeXt-T 1.6x faster at 128², batch 16).
- `Conv2D` with a 1x1 kernel: a matmul (1.3-2.6x faster); a stride-1 kernel
  with at most 64 output pixels: a matmul of the shifted windows side by
  side (im2col; 2-3x faster below 8x8, where XLA's 3x3 convolution at 2x2
  is 10x slower than at 3x3 and dominated ResNet-50's step at 64²). Both
  on JAX and torch; on torch the kernel copies were 30 % of ResNet-50's
  step, which now trains 1.7x faster at 64², batch 8 (1.2x at 128²). On
  JAX only, a stride-1 kernel with at least 32x32 output pixels keeps XLA's forward
  convolution, but its kernel gradient is a matmul per tap, where XLA's
  runs at a tenth of TensorFlow's speed on large maps.

Until issue 14 these layers were called `BiasFirstConv2D`,
`BiasFirstDepthwiseConv2D` and `BiasFirstConv2DTranspose`; files saved with
those names still load (see `keras_cvlec.layers.bias_first_conv`).
"""

import functools

import keras
import numpy as np
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
        arguments = (self.padding, self.dilation_rate, self.data_format)
        if self._is_matmul(inputs.shape):
            return _convolution_as_matmul(inputs, self.kernel, self.strides, *arguments)
        if self._has_matmul_kernel_gradient(inputs.shape):
            return _convolution_with_matmul_kernel_gradient(inputs, self.kernel, *arguments)
        return _in_supported_format(
            ops.conv,
            inputs,
            self.data_format,
            kernel=self.kernel,
            strides=list(self.strides),
            padding=self.padding,
            dilation_rate=self.dilation_rate,
        )

    def _is_matmul(self, input_shape):
        """Whether `_convolve` is a matmul (see the module docstring): on
        JAX or torch on a CPU, a 1x1 kernel, or a stride-1 kernel whose
        output has at most 64 pixels (at 2x2, XLA's 3x3 convolution is 10x
        slower than at 3x3; Keras-torch copies every kernel it convolves)."""
        if not _on_cpu(("jax", "torch"), self.kernel) or self.groups != 1:
            return False
        if tuple(self.kernel_size) == (1, 1):
            return True
        pixels = self._stride_one_output_pixels(input_shape)
        return pixels is not None and pixels <= 64

    def _has_matmul_kernel_gradient(self, input_shape):
        """Whether `_convolve`'s kernel gradient is a matmul per tap (see
        the module docstring): a stride-1 kernel whose output has at least
        32x32 pixels, on JAX on a CPU."""
        if not _on_cpu(("jax",), self.kernel) or self.groups != 1:
            return False
        pixels = self._stride_one_output_pixels(input_shape)
        return pixels is not None and pixels >= 32 * 32

    def _stride_one_output_pixels(self, input_shape):
        """The number of output pixels of a stride-1 convolution of a known
        size; None for any other."""
        size = [input_shape[axis] for axis in spatial_axes(self.data_format)]
        if tuple(self.strides) != (1, 1) or None in size:
            return None
        if self.padding == "valid":
            size = [s - (k - 1) * d for s, k, d in zip(size, self.kernel_size, self.dilation_rate)]
        return size[0] * size[1]


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
        docstring): stride 1, on JAX on a CPU."""
        return _on_cpu(("jax",), self.kernel) and tuple(self.strides) == (1, 1)


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
        return _in_supported_format(
            ops.conv_transpose,
            inputs,
            self.data_format,
            kernel=self.kernel,
            strides=list(self.strides),
            padding=self.padding,
            output_padding=self.output_padding,
            dilation_rate=self.dilation_rate,
        )

    def _is_matmul(self):
        """Whether `_convolve` is a matmul (see the module docstring): a
        kernel that does not overlap itself, on JAX on a CPU. `"same"` and
        `"valid"` padding agree when the kernel size is the stride."""
        return (
            _on_cpu(("jax",), self.kernel)
            and tuple(self.kernel_size) == tuple(self.strides)
            and tuple(self.dilation_rate) == (1, 1)
            and self.output_padding is None
        )


def _on_cpu(backends, variable):
    """Whether Keras runs one of `backends` on CPUs, where the expressions of
    the module docstring were measured (on an accelerator XLA calls cuDNN's
    or the TPU's convolutions, which were not). torch has no
    `keras.distribution`: its device is that of the layer's `variable`."""
    backend = keras.backend.backend()
    if backend not in backends:
        return False
    if backend == "torch":
        return str(variable.value.device).startswith("cpu")
    return all(device.startswith("cpu") for device in keras.distribution.list_devices())


def _in_supported_format(convolution, inputs, data_format, **arguments):
    """`convolution(inputs, data_format=data_format, **arguments)`, with a
    `"channels_first"` input transposed to `"channels_last"` and back on
    TensorFlow on a CPU: TensorFlow's CPU `Conv2D` and
    `Conv2DBackpropInput` take NHWC only unless oneDNN is on, which it is by
    default only on CPUs with AVX-512 features such as VNNI (an AVX2 CPU
    fails with "UnimplementedError: The Conv2D op currently only supports the NHWC
    tensor format on the CPU"). Keras transposes so for depthwise
    convolutions and pooling, not for these."""
    if data_format == "channels_first" and _on_cpu(("tensorflow",), None):
        outputs = convolution(
            ops.transpose(inputs, (0, 2, 3, 1)), data_format="channels_last", **arguments
        )
        return ops.transpose(outputs, (0, 3, 1, 2))
    return convolution(inputs, data_format=data_format, **arguments)


def _stride_one_pads(padding, kernel_size, dilation_rate):
    """The `(before, after)` padding of each spatial axis of a stride-1
    convolution (`"same"`: the extra pixel of an even kernel after)."""
    if padding == "valid":
        return [(0, 0), (0, 0)]
    totals = [(size - 1) * step for size, step in zip(kernel_size, dilation_rate)]
    return [(total // 2, total - total // 2) for total in totals]


def _pad_spatial(inputs, pads, data_format):
    """`inputs` padded with zeros by `pads`, a `(before, after)` pair for
    each spatial axis."""
    if all(pad == (0, 0) for pad in pads):
        return inputs
    full = [(0, 0)] * 4
    for axis, pad in zip(spatial_axes(data_format), pads):
        full[axis] = pad
    return ops.pad(inputs, full)


def _shifted_windows(inputs, kernel_size, pads, dilation_rate, data_format):
    """The inputs under each kernel tap `(i, j)` of a stride-1 convolution
    with padding `pads`, in the kernel's row-major order: a window of the
    output's size."""
    size_axes = spatial_axes(data_format)
    inputs = _pad_spatial(inputs, pads, data_format)
    padded = [ops.shape(inputs)[axis] for axis in size_axes]
    output_size = [p - (k - 1) * d for p, k, d in zip(padded, kernel_size, dilation_rate)]
    windows = []
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            window = [slice(None)] * 4
            for axis, tap, step, size in zip(size_axes, (i, j), dilation_rate, output_size):
                window[axis] = slice(tap * step, tap * step + size)
            windows.append(inputs[tuple(window)])
    return windows


def _with_gradients(forward, input_gradient, kernel_gradient, inputs, kernel):
    """`forward(inputs, kernel)`, whose gradients are
    `input_gradient(upstream, kernel)` and
    `kernel_gradient(upstream, inputs)`."""

    @ops.custom_gradient
    def convolve(inputs, kernel):
        def gradients(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            return input_gradient(upstream, kernel), kernel_gradient(upstream, inputs)

        return forward(inputs, kernel), gradients

    return convolve(ops.convert_to_tensor(inputs), ops.convert_to_tensor(kernel))


def _back_pads(pads, kernel_size, dilation_rate):
    """The padding of the upstream gradient whose stride-1 convolution with
    the flipped kernel is the input gradient of a convolution padded by
    `pads`: what the forward padding leaves of a "full" one."""
    return [
        ((size - 1) * step - before, (size - 1) * step - after)
        for (before, after), size, step in zip(pads, kernel_size, dilation_rate)
    ]


def _shifted_depthwise(inputs, kernel, padding, dilation_rate, data_format):
    """The depthwise convolution of stride 1 as `sum over (i, j) of inputs
    shifted by (i, j) * kernel[i, j]`. Its gradients are expressed so too
    (autodiff's would be slices and reductions XLA runs one by one): the
    input's is the same sum over the upstream gradient with the kernel
    flipped, the kernel's a matmul per channel (`_depthwise_kernel_gradient`)."""
    kernel_height, kernel_width, channels, multiplier = kernel.shape
    pads = _stride_one_pads(padding, (kernel_height, kernel_width), dilation_rate)
    back_pads = _back_pads(pads, (kernel_height, kernel_width), dilation_rate)

    def input_gradient(upstream, kernel):
        """Each input channel sums its `multiplier` output channels."""
        flipped = ops.flip(
            ops.reshape(kernel, (kernel_height, kernel_width, channels * multiplier, 1)),
            axis=(0, 1),
        )
        gradient = _shifted_sum(upstream, flipped, back_pads, dilation_rate, data_format)
        if multiplier == 1:
            return gradient
        shape = list(ops.shape(gradient))
        axis = channel_axis(data_format) % 4
        shape[axis : axis + 1] = [channels, multiplier]
        return ops.sum(ops.reshape(gradient, shape), axis=axis + 1)

    return _with_gradients(
        lambda inputs, kernel: _shifted_sum(inputs, kernel, pads, dilation_rate, data_format),
        input_gradient,
        lambda upstream, inputs: _depthwise_kernel_gradient(
            inputs, upstream, kernel.shape, pads, dilation_rate, data_format
        ),
        inputs,
        kernel,
    )


def _shifted_sum(inputs, kernel, pads, dilation_rate, data_format):
    """The stride-1 depthwise convolution with padding `pads`, as a sum of
    shifted copies of `inputs` times the kernel's taps."""
    kernel_height, kernel_width, channels, multiplier = kernel.shape
    axis = channel_axis(data_format)
    if multiplier > 1:  # output channel c * multiplier + m reads input channel c
        inputs = ops.repeat(inputs, multiplier, axis=axis)
    weights = ops.reshape(kernel, (kernel_height * kernel_width, channels * multiplier))
    weight_shape = [1, 1, 1, 1]
    weight_shape[axis] = channels * multiplier
    windows = _shifted_windows(
        inputs, (kernel_height, kernel_width), pads, dilation_rate, data_format
    )
    outputs = 0
    for tap, window in enumerate(windows):
        outputs = outputs + window * ops.reshape(weights[tap], weight_shape)
    return outputs


def _depthwise_kernel_gradient(inputs, upstream, kernel_shape, pads, dilation_rate, data_format):
    """The kernel gradient of `_shifted_sum`, `sum over (n, h, w) of the
    window of tap (i, j) times the upstream gradient`, per channel.

    With each channel's images as rows of pixels, kernel row `i` is one
    matmul per channel, `(padded width, n * h) @ (n * h, w)`, whose
    diagonals `v = w + j * dilation` are the taps `(i, j)`: far fewer
    passes over memory than a reduction per tap.
    """
    kernel_height, kernel_width, channels, multiplier = kernel_shape
    if multiplier > 1:
        inputs = ops.repeat(inputs, multiplier, axis=channel_axis(data_format))
    inputs = _pad_spatial(inputs, pads, data_format)
    channel_major = (3, 1, 0, 2) if data_format == "channels_last" else (1, 2, 0, 3)
    inputs = ops.transpose(inputs, channel_major)  # (c, padded h, n, padded w)
    upstream = ops.transpose(upstream, channel_major)  # (c, h, n, w)
    _, height, batch, width = upstream.shape
    padded_width = inputs.shape[3]
    rows = ops.stack(
        [
            ops.reshape(
                inputs[:, i * dilation_rate[0] : i * dilation_rate[0] + height],
                (-1, height * batch, padded_width),
            )
            for i in range(kernel_height)
        ],
        axis=1,
    )
    products = ops.einsum(
        "cimv,cmw->civw", rows, ops.reshape(upstream, (-1, height * batch, width))
    )
    diagonals = np.arange(padded_width)[None, :, None] == (
        np.arange(width)[None, None, :] + dilation_rate[1] * np.arange(kernel_width)[:, None, None]
    )
    gradient = ops.einsum("civw,jvw->ijc", products, ops.cast(diagonals, products.dtype))
    return ops.reshape(gradient, kernel_shape)


def _convolution_as_matmul(inputs, kernel, strides, padding, dilation_rate, data_format):
    """A convolution as one matmul: a 1x1 kernel's of the strided inputs, a
    larger (stride-1) kernel's of its shifted windows side by side along the
    channels (im2col)."""
    inputs = ops.convert_to_tensor(inputs)
    kernel_height, kernel_width, channels, filters = kernel.shape
    pattern = "nhwk,ko->nhwo" if data_format == "channels_last" else "nkhw,ko->nohw"
    if (kernel_height, kernel_width) == (1, 1):
        window = [slice(None)] * 4
        for axis, stride in zip(spatial_axes(data_format), strides):
            window[axis] = slice(None, None, stride)
        return ops.einsum(pattern, inputs[tuple(window)], ops.reshape(kernel, (channels, filters)))
    windows = _shifted_windows(
        inputs,
        (kernel_height, kernel_width),
        _stride_one_pads(padding, (kernel_height, kernel_width), dilation_rate),
        dilation_rate,
        data_format,
    )
    columns = ops.concatenate(windows, axis=channel_axis(data_format))
    weights = ops.reshape(kernel, (kernel_height * kernel_width * channels, filters))
    return ops.einsum(pattern, columns, weights)


def _convolution_with_matmul_kernel_gradient(inputs, kernel, padding, dilation_rate, data_format):
    """A stride-1 convolution (Keras's op) whose kernel gradient is a
    matmul per tap, `window(i, j)^T @ upstream` over every pixel, where
    XLA's (a convolution with the upstream gradient as its kernel) runs at
    a tenth of TensorFlow's speed on large maps; the input gradient is the
    convolution of the upstream gradient with the flipped kernel."""
    kernel_height, kernel_width, channels, filters = kernel.shape
    pads = _stride_one_pads(padding, (kernel_height, kernel_width), dilation_rate)
    back_pads = _back_pads(pads, (kernel_height, kernel_width), dilation_rate)
    arguments = dict(strides=1, dilation_rate=dilation_rate)
    if data_format == "channels_first":  # the windows' pixels as rows
        channels_last = functools.partial(ops.transpose, axes=(0, 2, 3, 1))
    else:
        channels_last = ops.convert_to_tensor

    def input_gradient(upstream, kernel):
        flipped = ops.transpose(ops.flip(kernel, axis=(0, 1)), (0, 1, 3, 2))
        upstream = _pad_spatial(upstream, back_pads, data_format)
        return _in_supported_format(
            ops.conv, upstream, data_format, kernel=flipped, padding="valid", **arguments
        )

    def kernel_gradient(upstream, inputs):
        upstream = ops.reshape(channels_last(upstream), (-1, filters))
        windows = _shifted_windows(
            channels_last(inputs),
            (kernel_height, kernel_width),
            pads,
            dilation_rate,
            "channels_last",
        )
        taps = [
            ops.matmul(ops.transpose(ops.reshape(w, (-1, channels))), upstream) for w in windows
        ]
        return ops.reshape(ops.stack(taps), kernel.shape)

    return _with_gradients(
        lambda inputs, kernel: _in_supported_format(
            ops.conv, inputs, data_format, kernel=kernel, padding=padding, **arguments
        ),
        input_gradient,
        kernel_gradient,
        inputs,
        kernel,
    )


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
