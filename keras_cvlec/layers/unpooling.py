"""Max pooling that remembers where each maximum came from, and max-unpooling.

SegNet (Badrinarayanan et al., 2017) upsamples its decoder by putting every
value back at the position of the maximum that the matching encoder pooling
selected, zeros elsewhere. Keras 3 has no such op in `keras.ops`; this module
builds both halves from `keras.ops` only, so they run, differentiate and trace
under XLA on the TensorFlow, JAX and PyTorch backends.

Index convention (the same as `tf.nn.max_pool_with_argmax(...,
include_batch_in_index=False)`): the index of the maximum at input row `y`,
column `x`, channel `c` of an image of size `height x width x channels` is

    index = (y * width + x) * channels + c

counted over the *unpadded* input, per image (the batch index is not
included), as an int32. The index is the same for `channels_first` inputs: it
always flattens the channels-last layout, so indices do not depend on the data
format and match TensorFlow's. PyTorch's `max_pool2d(return_indices=True)`
uses the per-channel index `y * width + x` instead; convert with
`index // channels`.

Ties: the first maximum in window scan order (row by row, left to right),
as the CPU kernels of TensorFlow and PyTorch (`max_pool2d`) do. A NaN never
compares greater than a number, so NaNs are not propagated (unlike
`torch.nn.functional.max_pool2d`).

Windows and padding are those of `keras.layers.MaxPooling2D`: `"valid"`
drops the rows/columns that do not fill a window, `"same"` produces
`ceil(size / stride)` outputs and pads with -inf, putting the smaller half of
the padding before (top/left) and the larger half after, as TensorFlow does.
"""

import numbers

import keras
from keras import ops

from keras_cvlec.utils.validation import (
    channel_axis,
    check_choice,
    check_int_pair,
    spatial_axes,
    standardize_data_format,
)

__all__ = ["MaxPoolingWithArgmax2D", "MaxUnpooling2D"]

_PADDINGS = ("valid", "same")


# --------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------


def _check_pair(name, value, allow_none=False):
    """An int or a pair of ints, each >= 1, returned as a tuple of 2 ints."""
    if value is None and allow_none:
        return None
    allowed = "None, " if allow_none else ""
    return check_int_pair(name, value, f"{allowed}a positive int or a tuple of 2 positive ints")


def _check_padding(padding):
    if not isinstance(padding, str):
        raise TypeError(f"`padding` must be 'valid' or 'same'. Received: padding={padding!r}")
    return check_choice("padding", padding.lower(), _PADDINGS)


# --------------------------------------------------------------------------
# Geometry along one spatial axis. `size` is a Python int, or a scalar tensor
# for a dimension that is unknown while tracing (TensorFlow graphs).
# --------------------------------------------------------------------------


def _is_int(*values):
    return all(isinstance(value, int) for value in values)


def _non_negative(value):
    return max(value, 0) if _is_int(value) else ops.maximum(value, 0)


def _pool_geometry(size, pool, stride, padding):
    """(output size, padding before, padding after), as Keras/TF compute them."""
    if padding == "valid":
        return (size - pool) // stride + 1, 0, 0
    output = (size + stride - 1) // stride
    total = _non_negative((output - 1) * stride + pool - size)
    return output, total // 2, total - total // 2


def _pooled_size(size, pool, stride, padding):
    """The pooled size of a static size (None stays None)."""
    if size is None:
        return None
    return _pool_geometry(size, pool, stride, padding)[0]


def _inferred_size(pooled, pool, stride, padding):
    """The unpooled size when no output size is given (see MaxUnpooling2D)."""
    if pooled is None:
        return None
    if padding == "valid":
        return (pooled - 1) * stride + pool
    return pooled * stride


def _check_pooled_size(output_size, pooled_size, pool, stride, padding, what):
    """Static check: `output_size` pools back to `pooled_size` (ints or None)."""
    for axis, (size, pooled) in enumerate(zip(output_size, pooled_size)):
        if not _is_int(size, pooled):
            continue
        expected = _pooled_size(size, pool[axis], stride[axis], padding)
        if expected != pooled:
            raise ValueError(
                f"MaxUnpooling2D: an output size of {tuple(output_size)} ({what}) "
                f"pools to {expected} along spatial axis {axis}, but the values "
                f"have size {pooled} there (pool_size={tuple(pool)}, "
                f"strides={tuple(stride)}, padding={padding!r})."
            )


def _window_base(out_h, out_w, top, left, strides, width, channels, data_format):
    """The flat index of each window's top-left corner, per channel.

    `((oy * stride_h - top) * width + (ox * stride_w - left)) * channels + c`,
    shaped `(out_h, out_w, channels)` or `(channels, out_h, out_w)`.
    """
    rows = ops.arange(out_h, dtype="int32") * strides[0] - top
    cols = ops.arange(out_w, dtype="int32") * strides[1] - left
    chans = ops.arange(channels, dtype="int32")
    pixel = rows[:, None] * width + cols[None, :]
    if data_format == "channels_last":
        return pixel[:, :, None] * channels + chans[None, None, :]
    return pixel[None, :, :] * channels + chans[:, None, None]


def _strided_window(x, axes, starts, counts, strides):
    """`x[..., start::stride][:count]` along both spatial axes."""
    index = [slice(None)] * 4
    for axis, start, count, stride in zip(axes, starts, counts, strides):
        index[axis] = slice(start, start + (count - 1) * stride + 1, stride)
    return x[tuple(index)]


# --------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_cvlec")
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """2D max pooling that also returns the flat index of every maximum.

    The pooled values equal `keras.layers.MaxPooling2D` with the same
    arguments; the indices follow `tf.nn.max_pool_with_argmax(...,
    include_batch_in_index=False)`: the maximum at row `y`, column `x`,
    channel `c` of an input of size `height x width x channels` has index
    `(y * width + x) * channels + c`, counted per image over the unpadded
    input, as int32. For `channels_first` inputs the index is the same number
    (it flattens the channels-last layout), so indices do not depend on the
    data format. Ties go to the first maximum in window scan order (row by
    row, left to right), as TensorFlow and PyTorch do. Indices are int32, so
    `height * width * channels` must be below 2**31.

    The gradient reaches only the selected maximum of each window (one
    position even when several tie).

    Args:
        pool_size: int or tuple of 2 ints, the window size.
        strides: int, tuple of 2 ints or None (the default: `pool_size`).
        padding: `"valid"` (drop incomplete windows) or `"same"` (pad with
            -inf to `ceil(size / stride)` outputs, as Keras/TF pad).
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Returns:
        A tuple `(pooled, indices)` of two tensors of the same shape: the
        pooled values in the layer's compute dtype and the int32 indices.

    Example:

    >>> x = keras.ops.reshape(keras.ops.arange(16, dtype="float32"), (1, 4, 4, 1))
    >>> pooled, indices = MaxPoolingWithArgmax2D(pool_size=2)(x)
    >>> keras.ops.convert_to_numpy(pooled)[0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    >>> keras.ops.convert_to_numpy(indices)[0, :, :, 0]
    array([[ 5,  7],
           [13, 15]], dtype=int32)
    """

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _check_pair("pool_size", pool_size)
        strides = _check_pair("strides", strides, allow_none=True)
        self.strides = self.pool_size if strides is None else strides
        self.padding = _check_padding(padding)
        self.data_format = standardize_data_format(data_format)
        self.input_spec = keras.layers.InputSpec(ndim=4)
        self.built = True

    def call(self, inputs):
        x = inputs
        axes = spatial_axes(self.data_format)
        shape = ops.shape(x)
        height, width = shape[axes[0]], shape[axes[1]]
        channels = shape[channel_axis(self.data_format)]
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        out_h, top, bottom = _pool_geometry(height, kh, sh, self.padding)
        out_w, left, right = _pool_geometry(width, kw, sw, self.padding)
        if _is_int(out_h, out_w) and (out_h < 1 or out_w < 1):
            raise ValueError(
                f"MaxPoolingWithArgmax2D: the input's spatial size "
                f"{(height, width)} is smaller than pool_size={self.pool_size} "
                f"with padding='valid'. Received input shape {tuple(x.shape)}."
            )
        # Only "same" padding adds positions (-inf) that a window can select.
        clip = self.padding == "same" and not (
            _is_int(top, bottom, left, right) and top == bottom == left == right == 0
        )
        tiled = sh >= kh and sw >= kw
        if tiled:
            # Windows do not overlap: cover out * stride rows/columns from
            # (-top, -left) and reshape, so each window position is a plain
            # (non-strided) slice; strided slices are slow on TensorFlow.
            extent = (out_h * sh, out_w * sw)
        else:
            extent = ((out_h - 1) * sh + kh, (out_w - 1) * sw + kw)
        x = _pad_and_crop(x, axes, (-top, -left), extent, (height, width), float("-inf"))
        if tiled:
            window = _tiled_windows(x, self.data_format, (out_h, out_w), (sh, sw), channels)
        else:

            def window(dy, dx):
                return _strided_window(x, axes, (dy, dx), (out_h, out_w), (sh, sw))

        # Scan the window positions in row-major order, keeping the running
        # maximum and where it came from; strict `>` keeps the first of ties,
        # and `where` sends the gradient to that one position. Without
        # padding, track the flat offset (dy * width + dx) * channels
        # directly; with "same" padding, track the window position
        # k = dy * kw + dx and clip the decoded row/column into the image (a
        # padded position can only win a window whose real values are all
        # -inf).
        best = arg = None
        for dy in range(kh):
            for dx in range(kw):
                values = window(dy, dx)
                code = dy * kw + dx if clip else (dy * width + dx) * channels
                code = ops.cast(code, "int32")
                if best is None:
                    best = values
                    arg = ops.zeros_like(values, dtype="int32") + code
                    continue
                better = ops.greater(values, best)
                best = ops.where(better, values, best)
                arg = ops.where(better, code, arg)

        if not clip:
            base = _window_base(
                out_h, out_w, top, left, self.strides, width, channels, self.data_format
            )
            return best, base + arg
        row_shape = [1, 1, 1, 1]
        row_shape[axes[0]] = -1
        col_shape = [1, 1, 1, 1]
        col_shape[axes[1]] = -1
        rows = ops.reshape(ops.arange(out_h, dtype="int32") * sh - top, row_shape)
        cols = ops.reshape(ops.arange(out_w, dtype="int32") * sw - left, col_shape)
        y = ops.clip(rows + arg // kw, 0, height - 1)
        x_pos = ops.clip(cols + arg % kw, 0, width - 1)
        chan_shape = [1, 1, 1, 1]
        chan_shape[channel_axis(self.data_format)] = -1
        chans = ops.reshape(ops.arange(channels, dtype="int32"), chan_shape)
        return best, (y * width + x_pos) * channels + chans

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(
                f"MaxPoolingWithArgmax2D expects a 4D input. Received input_shape={input_shape}"
            )
        axes = spatial_axes(self.data_format)
        output_shape = list(input_shape)
        for i, axis in enumerate(axes):
            size = _pooled_size(input_shape[axis], self.pool_size[i], self.strides[i], self.padding)
            if size is not None and size < 1:
                raise ValueError(
                    f"MaxPoolingWithArgmax2D: the input's spatial size is smaller "
                    f"than pool_size={self.pool_size} with padding='valid'. "
                    f"Received input_shape={input_shape}"
                )
            output_shape[axis] = size
        output_shape = tuple(output_shape)
        return output_shape, output_shape

    def compute_output_spec(self, inputs):
        pooled_shape, index_shape = self.compute_output_shape(inputs.shape)
        return (
            keras.KerasTensor(pooled_shape, dtype=self.compute_dtype),
            keras.KerasTensor(index_shape, dtype="int32"),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pool_size": self.pool_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_cvlec")
class MaxUnpooling2D(keras.layers.Layer):
    """Puts pooled values back where their maxima came from, zeros elsewhere.

    The inverse of `MaxPoolingWithArgmax2D` (and of
    `tf.nn.max_pool_with_argmax(..., include_batch_in_index=False)`) with the
    same `pool_size`, `strides` and `padding`: `indices` use that layer's
    convention, `(y * width + x) * channels + c` per image over the
    channels-last layout, for both data formats. Where windows overlap
    (`strides < pool_size`) and one position is the maximum of several
    windows, its values are summed, so the layer is exactly the transpose of
    max pooling (what `tf.nn.max_pool_grad` computes); PyTorch's
    `max_unpool2d` keeps one of them instead. Without overlap both agree.

    The output's spatial size `(height, width)` is, in order of precedence:

    1. the spatial size of the optional third input, the tensor that was
       pooled (`layer([values, indices, pooling_input])`): this follows
       dynamic sizes, e.g. in a U-Net/SegNet on any input size. Only its
       shape is used; no gradient flows into it;
    2. the constructor's `output_size=(height, width)`, like PyTorch's
       `output_size` argument;
    3. inferred from the pooled size `n`: `(n - 1) * stride + pool_size` with
       `"valid"` padding (PyTorch's default), `n * stride` with `"same"`
       padding. Both equal `n * pool_size` when `strides == pool_size`.
       Several sizes pool to the same `n` (a 7x9 input pools to 3x4 with 2x2
       windows; "valid" padding drops the last row and column): pass the size
       (1. or 2.) whenever the pooled input's size was not a multiple of the
       stride, otherwise the indices decode to wrong positions and their
       values are dropped.

    Values whose index is not a position of its own pooling window are
    dropped (this happens only for indices from a different geometry).
    Gradients flow to `values` (one per value, from the position it is put
    at), never to `indices`.

    Args:
        pool_size: int or tuple of 2 ints, the pooling window size.
        strides: int, tuple of 2 ints or None (the default: `pool_size`).
        padding: `"valid"` or `"same"`, the padding of the pooling.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        output_size: None, or the pooled tensor's static spatial size as an
            int or a tuple `(height, width)`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a list `[values, indices]` or `[values, indices,
            pooling_input]`: `values` float `(batch, out_h, out_w, channels)`
            (or channels first), `indices` an integer tensor of the same
            shape.

    Returns:
        A tensor `(batch, height, width, channels)` (or channels first) of
        the values' dtype.

    Example:

    >>> x = keras.random.normal((2, 7, 9, 3), seed=0)  # odd size
    >>> pooled, indices = MaxPoolingWithArgmax2D(pool_size=2)(x)
    >>> tuple(pooled.shape)
    (2, 3, 4, 3)
    >>> tuple(MaxUnpooling2D(pool_size=2)([pooled, indices, x]).shape)
    (2, 7, 9, 3)
    >>> unpool = MaxUnpooling2D(pool_size=2, output_size=(7, 9))
    >>> tuple(unpool([pooled, indices]).shape)
    (2, 7, 9, 3)
    >>> x = keras.random.normal((2, 8, 8, 3), seed=0)  # a multiple of 2
    >>> pooled, indices = MaxPoolingWithArgmax2D(pool_size=2)(x)
    >>> tuple(MaxUnpooling2D(pool_size=2)([pooled, indices]).shape)  # inferred
    (2, 8, 8, 3)
    """

    def __init__(
        self,
        pool_size=2,
        strides=None,
        padding="valid",
        data_format=None,
        output_size=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.pool_size = _check_pair("pool_size", pool_size)
        strides = _check_pair("strides", strides, allow_none=True)
        self.strides = self.pool_size if strides is None else strides
        self.padding = _check_padding(padding)
        self.data_format = standardize_data_format(data_format)
        self.output_size = _check_pair("output_size", output_size, allow_none=True)
        self.built = True

    # -- inputs ---------------------------------------------------------------

    def _split_inputs(self, inputs, shapes=False):
        """(values, indices, pooling_input or None) from the call's list."""
        usage = (
            "MaxUnpooling2D must be called on a list [values, indices] or "
            "[values, indices, pooling_input], with the indices of "
            "MaxPoolingWithArgmax2D."
        )
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(
                f"{usage} Received a single {type(inputs).__name__} of shape "
                f"{getattr(inputs, 'shape', None)}"
            )
        if shapes and all(dim is None or isinstance(dim, numbers.Integral) for dim in inputs):
            raise TypeError(f"{usage} Received a single input of shape {tuple(inputs)}")
        if len(inputs) not in (2, 3):
            raise ValueError(f"{usage} Received {len(inputs)} inputs.")
        values, indices = inputs[0], inputs[1]
        reference = inputs[2] if len(inputs) == 3 else None
        return values, indices, reference

    def _output_hw(self, values_hw, reference_hw):
        """Static (height, width) (ints or None), checked against the values."""
        if reference_hw is not None:
            size, what = tuple(reference_hw), "the pooling input"
            if self.output_size is not None:
                pairs = zip(size, self.output_size)
                if any(s is not None and s != o for s, o in pairs):
                    raise ValueError(
                        f"MaxUnpooling2D: output_size={self.output_size} differs "
                        f"from the spatial size {size} of the third input (the "
                        "pooling input)."
                    )
                # Unknown sizes of the pooling input: output_size is the size.
                size = self.output_size
        elif self.output_size is not None:
            size, what = self.output_size, "output_size"
        else:
            size = tuple(
                _inferred_size(n, k, s, self.padding)
                for n, k, s in zip(values_hw, self.pool_size, self.strides)
            )
            what = "inferred"
        _check_pooled_size(size, values_hw, self.pool_size, self.strides, self.padding, what)
        return size

    # -- call -----------------------------------------------------------------

    def call(self, inputs):
        values, indices, reference = self._split_inputs(inputs)
        if "int" not in keras.backend.standardize_dtype(indices.dtype):
            raise TypeError(
                "MaxUnpooling2D: `indices` must be an integer tensor (from "
                f"MaxPoolingWithArgmax2D). Received dtype {indices.dtype}"
            )
        axes = spatial_axes(self.data_format)
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        shape = ops.shape(values)
        in_h, in_w = shape[axes[0]], shape[axes[1]]
        channels = shape[channel_axis(self.data_format)]
        self._output_hw(  # static checks only
            (values.shape[axes[0]], values.shape[axes[1]]),
            None if reference is None else (reference.shape[axes[0]], reference.shape[axes[1]]),
        )
        if reference is not None:
            ref_shape = ops.shape(reference)
            height, width = ref_shape[axes[0]], ref_shape[axes[1]]
        elif self.output_size is not None:
            height, width = self.output_size
        else:
            height = _inferred_size(in_h, kh, sh, self.padding)
            width = _inferred_size(in_w, kw, sw, self.padding)
        _, top, _ = _pool_geometry(height, kh, sh, self.padding)
        _, left, _ = _pool_geometry(width, kw, sw, self.padding)

        indices = ops.cast(indices, "int32")
        fmt = self.data_format
        zero = ops.zeros((), dtype=values.dtype)
        if sh >= kh and sw >= kw:
            # Windows do not overlap, so output position (y, x) can only come
            # from window ((y + top) // stride, (x + left) // stride):
            # upsample values and indices by the strides (nearest neighbour),
            # cut out the image, and keep each value where its index equals
            # the position's own flat index.
            extent = (in_h * sh, in_w * sw)
            up_values = _pad_and_crop(
                _upsample(values, (sh, sw), fmt),
                axes,
                (top, left),
                (height, width),
                extent,
                0,
            )
            up_indices = _pad_and_crop(
                _upsample(indices, (sh, sw), fmt),
                axes,
                (top, left),
                (height, width),
                extent,
                -1,
            )
            grid = _window_base(height, width, 0, 0, (1, 1), width, channels, fmt)
            return ops.where(ops.equal(up_indices, grid), up_values, zero)

        # Overlapping windows: window position (dy, dx) holds the value where
        # the index minus the window's top-left corner equals
        # (dy * width + dx) * channels. Dilate each such piece by the
        # strides, shift it to its window position, and sum.
        base = _window_base(in_h, in_w, top, left, self.strides, width, channels, fmt)
        offsets = indices - base
        canvas = None
        for dy in range(kh):
            for dx in range(kw):
                code = ops.cast((dy * width + dx) * channels, "int32")
                piece = ops.where(ops.equal(offsets, code), values, zero)
                piece = _dilate(piece, axes[0], sh)
                piece = _dilate(piece, axes[1], sw)
                pads = [[0, 0] for _ in range(4)]
                pads[axes[0]] = [dy, kh - 1 - dy]
                pads[axes[1]] = [dx, kw - 1 - dx]
                piece = ops.pad(piece, pads)
                canvas = piece if canvas is None else canvas + piece
        extent = ((in_h - 1) * sh + kh, (in_w - 1) * sw + kw)
        # The canvas covers the padded input: the image starts at (top, left).
        return _pad_and_crop(canvas, axes, (top, left), (height, width), extent, 0)

    def compute_output_shape(self, input_shape):
        values_shape, indices_shape, reference_shape = self._split_inputs(input_shape, shapes=True)
        values_shape = tuple(values_shape)
        if len(values_shape) != 4 or len(indices_shape) != 4:
            raise ValueError(
                f"MaxUnpooling2D expects 4D values and indices. Received input_shape={input_shape}"
            )
        for a, b in zip(values_shape, indices_shape):
            if a is not None and b is not None and a != b:
                raise ValueError(
                    "MaxUnpooling2D: values and indices must have the same "
                    f"shape. Received {values_shape} and {tuple(indices_shape)}"
                )
        axes = spatial_axes(self.data_format)
        hw = self._output_hw(
            (values_shape[axes[0]], values_shape[axes[1]]),
            None
            if reference_shape is None
            else (reference_shape[axes[0]], reference_shape[axes[1]]),
        )
        output_shape = list(values_shape)
        output_shape[axes[0]], output_shape[axes[1]] = hw
        return tuple(output_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pool_size": self.pool_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "output_size": self.output_size,
            }
        )
        return config


def _pad_and_crop(x, axes, starts, lengths, sizes, value):
    """Rows/columns `[start, start + length)` of `x`, whose spatial size is `sizes`.

    Out-of-range positions (a negative start, or past the end) are padded
    with `value`. Python ints are handled statically; tensors (sizes unknown
    while tracing on TensorFlow) dynamically.
    """
    pads = [[0, 0] for _ in range(4)]
    index = [slice(None)] * 4
    needs_pad = needs_crop = False
    for axis, start, length, size in zip(axes, starts, lengths, sizes):
        before = _non_negative(-start)
        after = _non_negative(start + length - size)
        pads[axis] = [before, after]
        needs_pad = needs_pad or not (_is_int(before, after) and before == after == 0)
        offset = start + before  # where the range starts once padded, >= 0
        index[axis] = slice(offset, offset + length)
        needs_crop = needs_crop or not (
            _is_int(offset, length, size, before, after)
            and offset == 0
            and length == size + before + after
        )
    if needs_pad:
        x = ops.pad(x, pads, constant_values=value)
    if needs_crop:
        x = x[tuple(index)]
    return x


def _tiled_windows(x, data_format, out_size, strides, channels):
    """`window(dy, dx)`: the pooled-size tensor of window position (dy, dx).

    `x` covers exactly `out * stride` rows and columns. Reshaped, a window
    position is one piece of an unstack (rows) and a split (columns), whose
    gradients are a stack and a concatenation: on TensorFlow much cheaper
    than strided slices and their gradients.
    """
    (out_h, out_w), (sh, sw) = out_size, strides
    if data_format == "channels_last":
        x = ops.reshape(x, [-1, out_h, sh, out_w, sw * channels])
        rows = ops.unstack(x, axis=2)
        pieces = [ops.split(row, sw, axis=-1) for row in rows]
    else:
        x = ops.reshape(x, [-1, channels, out_h, sh, out_w, sw])
        rows = ops.unstack(x, axis=3)
        pieces = [ops.unstack(row, axis=-1) for row in rows]

    def window(dy, dx):
        return pieces[dy][dx]

    return window


def _upsample(x, factors, data_format):
    """Nearest-neighbour upsampling of the spatial axes by integer factors.

    One axis at a time: the gradient then reduces one axis at a time, which
    TensorFlow does several times faster than both at once.
    """
    fh, fw = factors
    if data_format == "channels_last":
        batch, height, width, channels = ops.shape(x)
        x = ops.reshape(x, [-1, height, 1, width * channels])
        x = ops.broadcast_to(x, [batch, height, fh, width * channels])
        x = ops.reshape(x, [-1, height * fh, width, 1, channels])
        x = ops.broadcast_to(x, [batch, height * fh, width, fw, channels])
        return ops.reshape(x, [-1, height * fh, width * fw, channels])
    batch, channels, height, width = ops.shape(x)
    x = ops.reshape(x, [-1, channels, height, 1, width])
    x = ops.broadcast_to(x, [batch, channels, height, fh, width])
    x = ops.reshape(x, [-1, channels, height * fh, width, 1])
    x = ops.broadcast_to(x, [batch, channels, height * fh, width, fw])
    return ops.reshape(x, [-1, channels, height * fh, width * fw])


def _dilate(x, axis, stride):
    """Insert `stride - 1` zeros between the entries along `axis`."""
    if stride == 1:
        return x
    size = ops.shape(x)[axis]
    stacked = ops.stack([x] + [ops.zeros_like(x)] * (stride - 1), axis=axis + 1)
    shape = list(ops.shape(stacked))
    merged = shape[:axis] + [size * stride] + shape[axis + 2 :]
    merged[0] = -1
    dilated = ops.reshape(stacked, merged)
    index = [slice(None)] * 4
    index[axis] = slice(0, (size - 1) * stride + 1)
    return dilated[tuple(index)]
