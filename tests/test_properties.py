"""Property-based tests (Hypothesis) of the shape-sensitive layers.

Random sizes, pool sizes, strides, paddings, multiples and data formats,
checked against NumPy references written here, independent of the
implementation:

- `MaxPoolingWithArgmax2D` against a loop-over-windows NumPy max pool with
  argmax (the flat index `(y * width + x) * channels + c` of
  `tf.nn.max_pool_with_argmax(include_batch_in_index=False)`, windows and
  "same" padding as `keras.layers.MaxPooling2D`), and `MaxUnpooling2D`
  against a NumPy scatter-add of the pooled values at their indices; on
  TensorFlow also inside a `tf.function` with unknown sizes.
- `PadToMultiple2D` / `CropToMatch2D`: next multiple, content top-left, zeros
  bottom/right, exact round trip.
- `build_unet`: the output keeps the input's height and width.

Cost on the 3-backend CI: small tensors, a tiny U-Net (depth 2, filters 2)
built once per data format, and few, fixed examples (`derandomize=True`: the
same examples on every run, so CI is deterministic). Every example has new
shapes, and eager JAX compiles each op once per shape (about 1.7 s for one
pool + unpool example here); `jax.jit` of the whole call compiles once (about
0.12 s), so on JAX each example runs under `jax.jit` (see `call`). The shapes
are concrete while tracing, so the layers take the same code paths as eagerly.
"""

import functools

import numpy as np
import pytest
from hypothesis import given, settings  # the `test` extra installs it
from hypothesis import strategies as st

from keras_cvlec.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D
from keras_cvlec.layers.pad_to_multiple import CropToMatch2D, PadToMultiple2D
from keras_cvlec.models.unet import build_unet
from tests.harness import backend_name, to_numpy

DATA_FORMATS = ("channels_last", "channels_first")


def _settings(max_examples):
    return settings(max_examples=max_examples, deadline=None, derandomize=True)


def call(fn, *arrays):
    """`fn(*arrays)`: eagerly on TensorFlow and torch, under `jax.jit` on JAX."""
    if backend_name() == "jax":
        import jax

        fn = jax.jit(fn)
    return fn(*arrays)


def to_format(x, data_format):
    """A channels_last NumPy array in `data_format`."""
    return x if data_format == "channels_last" else np.transpose(x, (0, 3, 1, 2))


def from_format(x, data_format):
    """A `data_format` array back to channels_last."""
    x = to_numpy(x)
    return x if data_format == "channels_last" else np.transpose(x, (0, 2, 3, 1))


def distinct_values(shape, seed):
    """float32 values that are all different (negative ones too), so every
    window has one maximum: a shuffled arange, centred on 0."""
    size = int(np.prod(shape))
    values = np.random.default_rng(seed).permutation(size) - size // 2
    return values.reshape(shape).astype("float32")


# --------------------------------------------------------------------------
# NumPy references (channels_last)
# --------------------------------------------------------------------------


def window_starts(size, pool, stride, padding):
    """First input position of every window along one axis (may be < 0)."""
    if padding == "valid":
        count = (size - pool) // stride + 1
        return [i * stride for i in range(count)]
    count = -(-size // stride)  # ceil
    total = max((count - 1) * stride + pool - size, 0)
    return [i * stride - total // 2 for i in range(count)]


def numpy_pool_with_argmax(x, pool, stride, padding):
    """(pooled, flat indices) of a channels_last batch, one window at a time."""
    batch, height, width, channels = x.shape
    rows = window_starts(height, pool[0], stride[0], padding)
    cols = window_starts(width, pool[1], stride[1], padding)
    pooled = np.zeros((batch, len(rows), len(cols), channels), x.dtype)
    indices = np.zeros(pooled.shape, "int64")
    for i, top in enumerate(rows):
        for j, left in enumerate(cols):
            y0, y1 = max(top, 0), min(top + pool[0], height)
            x0, x1 = max(left, 0), min(left + pool[1], width)
            assert y0 < y1 and x0 < x1, "a window without an input position"
            window = x[:, y0:y1, x0:x1, :].reshape(batch, -1, channels)
            best = np.argmax(window, axis=1)  # (batch, channels)
            y = y0 + best // (x1 - x0)
            x_pos = x0 + best % (x1 - x0)
            pooled[:, i, j, :] = np.take_along_axis(window, best[:, None], 1)[:, 0]
            indices[:, i, j, :] = (y * width + x_pos) * channels + np.arange(channels)
    return pooled, indices


def numpy_unpool(values, indices, shape):
    """Scatter-add of every value at its flat per-image index, zeros elsewhere."""
    out = np.zeros((shape[0], int(np.prod(shape[1:]))), values.dtype)
    for b in range(shape[0]):
        np.add.at(out[b], indices[b].reshape(-1), values[b].reshape(-1))
    return out.reshape(shape)


# --------------------------------------------------------------------------
# 1. Max pooling with argmax, and max-unpooling
# --------------------------------------------------------------------------


@st.composite
def pooling_cases(draw):
    """(x, pool, stride, padding, data_format): x channels_last, distinct values.

    Pools and strides 1..3 per axis, independently (non-square, overlapping
    windows with stride < pool, gaps with stride > pool); sizes up to 7 past
    the pool, so odd sizes and sizes that are no multiple of the stride are
    common, and with "same" padding also smaller than the pool.
    """
    pool = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.sampled_from(("valid", "same")))
    data_format = draw(st.sampled_from(DATA_FORMATS))
    # "valid" needs a whole window; "same" takes any size.
    smallest = pool if padding == "valid" else (1, 1)
    height = draw(st.integers(smallest[0], pool[0] + 7))
    width = draw(st.integers(smallest[1], pool[1] + 7))
    batch, channels = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    x = distinct_values((batch, height, width, channels), draw(st.integers(0, 2**16)))
    return x, pool, stride, padding, data_format


@_settings(max_examples=40)
@given(pooling_cases())
def test_pool_and_unpool_match_numpy(case):
    x, pool, stride, padding, data_format = case
    kwargs = dict(pool_size=pool, strides=stride, padding=padding, data_format=data_format)
    pooling = MaxPoolingWithArgmax2D(**kwargs)
    unpool_like_input = MaxUnpooling2D(**kwargs)  # size of the third input
    unpool_to_size = MaxUnpooling2D(**kwargs, output_size=x.shape[1:3])

    def pool_and_unpool(inputs):
        pooled, indices = pooling(inputs)
        return (
            pooled,
            indices,
            unpool_like_input([pooled, indices, inputs]),
            unpool_to_size([pooled, indices]),
        )

    outputs = call(pool_and_unpool, to_format(x, data_format))
    pooled, indices, *unpooled = [from_format(out, data_format) for out in outputs]

    ref_pooled, ref_indices = numpy_pool_with_argmax(x, pool, stride, padding)
    np.testing.assert_array_equal(pooled, ref_pooled, err_msg="pooled values")
    np.testing.assert_array_equal(indices, ref_indices, err_msg="argmax indices")
    # The index points at the maximum itself.
    flat = x.reshape(x.shape[0], -1)
    np.testing.assert_array_equal(
        np.take_along_axis(flat, indices.reshape(x.shape[0], -1).astype("int64"), 1),
        pooled.reshape(x.shape[0], -1),
        err_msg="x[index] != pooled value",
    )
    # Every pooled value back at its index (summed where overlapping windows
    # share a maximum), zeros everywhere else, in the input's shape.
    expected = numpy_unpool(ref_pooled, ref_indices, x.shape)
    for name, result in zip(("with the pooling input", "with output_size"), unpooled):
        assert result.shape == x.shape, f"unpooled {name}: shape {result.shape}"
        np.testing.assert_array_equal(result, expected, err_msg=f"unpooled {name}")


@pytest.mark.skipif(
    backend_name() != "tensorflow", reason="only TensorFlow graphs have unknown sizes"
)
@_settings(max_examples=6)
@given(pooling_cases())
def test_pool_and_unpool_with_unknown_sizes_match_numpy(case):
    """The same under `tf.function` with unknown batch, height and width: the
    layers then compute geometry from size tensors (what `fit` and `predict`
    of a model with `input_shape=(None, None, C)` run on TensorFlow)."""
    import tensorflow as tf

    x, pool, stride, padding, data_format = case
    kwargs = dict(pool_size=pool, strides=stride, padding=padding, data_format=data_format)
    pooling, unpool = MaxPoolingWithArgmax2D(**kwargs), MaxUnpooling2D(**kwargs)
    inputs = to_format(x, data_format)
    spec = [None] * 4
    spec[3 if data_format == "channels_last" else 1] = x.shape[3]

    @tf.function(input_signature=[tf.TensorSpec(spec, tf.float32)])
    def pool_and_unpool(inputs):
        pooled, indices = pooling(inputs)
        return pooled, indices, unpool([pooled, indices, inputs])

    pooled, indices, unpooled = [from_format(out, data_format) for out in pool_and_unpool(inputs)]
    ref_pooled, ref_indices = numpy_pool_with_argmax(x, pool, stride, padding)
    np.testing.assert_array_equal(pooled, ref_pooled, err_msg="pooled values")
    np.testing.assert_array_equal(indices, ref_indices, err_msg="argmax indices")
    np.testing.assert_array_equal(
        unpooled, numpy_unpool(ref_pooled, ref_indices, x.shape), err_msg="unpooled"
    )


# --------------------------------------------------------------------------
# 2. Pad to a multiple, crop back
# --------------------------------------------------------------------------


@_settings(max_examples=40)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    multiple=st.integers(1, 16),
    channels=st.integers(1, 3),
    data_format=st.sampled_from(DATA_FORMATS),
    seed=st.integers(0, 2**16),
)
def test_pad_to_multiple_and_crop_back(height, width, multiple, channels, data_format, seed):
    # Nonzero values, so the zero padding is told apart from the content.
    x = distinct_values((1, height, width, channels), seed)
    x = np.where(x >= 0, x + 1, x)
    padded_h = -(-height // multiple) * multiple
    padded_w = -(-width // multiple) * multiple

    pad = PadToMultiple2D(multiple, data_format=data_format)
    crop = CropToMatch2D(data_format=data_format)
    inputs = to_format(x, data_format)
    expected_shape = to_format(np.zeros((1, padded_h, padded_w, channels)), data_format).shape
    assert pad.compute_output_shape(inputs.shape) == expected_shape

    def pad_and_crop(inputs):
        padded = pad(inputs)
        return padded, crop([padded, inputs])

    padded, cropped = call(pad_and_crop, inputs)
    assert tuple(padded.shape) == expected_shape
    # The next multiples: at least the size, less than one multiple more.
    assert padded_h % multiple == 0 and height <= padded_h < height + multiple
    assert padded_w % multiple == 0 and width <= padded_w < width + multiple
    # The content at the top-left, zeros at the bottom and right.
    reference = np.zeros((1, padded_h, padded_w, channels), "float32")
    reference[:, :height, :width, :] = x
    np.testing.assert_array_equal(from_format(padded, data_format), reference)
    # The crop gives back the input exactly.
    np.testing.assert_array_equal(from_format(cropped, data_format), x)


# --------------------------------------------------------------------------
# 3. U-Net at any size
# --------------------------------------------------------------------------

UNET_CHANNELS, UNET_CLASSES = 2, 3


@functools.cache
def tiny_unet(data_format):
    """Built once per data format (and backend process), with unknown sizes."""
    shape = (None, None, UNET_CHANNELS)
    if data_format == "channels_first":
        shape = (UNET_CHANNELS, None, None)
    return build_unet(
        input_shape=shape,
        num_classes=UNET_CLASSES,
        depth=2,
        filters=2,
        data_format=data_format,
    )


@pytest.mark.parametrize("data_format", DATA_FORMATS)
@_settings(max_examples=5)
@given(height=st.integers(5, 40), width=st.integers(5, 40))
def test_unet_output_keeps_any_input_size(data_format, height, width):
    model = tiny_unet(data_format)
    x = (
        np.random.default_rng(height * 41 + width)
        .standard_normal((1, height, width, UNET_CHANNELS))
        .astype("float32")
    )
    output = call(lambda inputs: model(inputs, training=False), to_format(x, data_format))
    expected = to_format(np.zeros((1, height, width, UNET_CLASSES)), data_format).shape
    assert tuple(output.shape) == expected
    assert np.all(np.isfinite(to_numpy(output)))
