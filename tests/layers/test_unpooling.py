"""MaxPoolingWithArgmax2D and MaxUnpooling2D against tf.nn and torch.nn.functional.

References, imported lazily inside the tests (both are installed in every
backend's process): `tf.nn.max_pool_with_argmax(include_batch_in_index=False)`
for pooled values and indices, `torch.nn.functional.max_pool2d(
return_indices=True)` for the tie rule, `torch.nn.functional.max_unpool2d`
for unpooling, NumPy `np.add.at` for overlapping windows, hand-computed
gradients through `harness.value_and_gradient` (tf.GradientTape, jax.grad,
torch.autograd).
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_cvlec.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D
from tests import harness

# (input height, width), pool_size, strides, padding. Sizes not divisible by
# the stride (7x9), overlapping windows (strides < pool), gaps (strides > pool).
GEOMETRIES = [
    ((8, 8), 2, 2, "valid"),
    ((7, 9), 2, 2, "valid"),
    ((7, 9), 2, 2, "same"),
    ((7, 9), 3, 3, "valid"),
    ((7, 9), 3, 3, "same"),
    ((7, 9), 3, 2, "valid"),
    ((7, 9), 3, 2, "same"),
    ((7, 9), 2, 1, "valid"),
    ((6, 7), 3, 1, "same"),
    ((7, 9), 2, 3, "same"),
]
NON_OVERLAPPING = [g for g in GEOMETRIES if g[2] >= g[1]]


def geometry_id(geometry):
    (h, w), pool, stride, padding = geometry
    return f"{h}x{w}-pool{pool}-stride{stride}-{padding}"


def random_input(shape, ties, seed=0):
    """Integer-valued floats in [0, 3) have many ties; normal values none."""
    rng = np.random.default_rng(seed)
    if ties:
        return rng.integers(0, 3, shape).astype("float32")
    return rng.standard_normal(shape).astype("float32")


def tf_pool_with_argmax(x, pool, stride, padding):
    """Reference: tf.nn.max_pool_with_argmax on channels_last numpy input."""
    import tensorflow as tf

    pooled, indices = tf.nn.max_pool_with_argmax(
        x, pool, stride, padding.upper(), include_batch_in_index=False
    )
    return pooled.numpy(), indices.numpy()


def numpy_unpool(values, indices, output_shape):
    """Reference: channels_last scatter-add of values at flat per-image indices."""
    batch = output_shape[0]
    out = np.zeros((batch, int(np.prod(output_shape[1:]))), dtype=values.dtype)
    for b in range(batch):
        np.add.at(out[b], indices[b].reshape(-1), values[b].reshape(-1))
    return out.reshape(output_shape)


def to_channels_first(x):
    return np.transpose(x, (0, 3, 1, 2))


def to_channels_last(x):
    return np.transpose(x, (0, 2, 3, 1))


# --------------------------------------------------------------------------
# Pooling: values and indices
# --------------------------------------------------------------------------


@pytest.mark.parametrize("ties", [True, False], ids=["ties", "no-ties"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
def test_pool_matches_tf_max_pool_with_argmax(geometry, ties):
    (h, w), pool, stride, padding = geometry
    x = random_input((2, h, w, 3), ties)
    pooled, indices = MaxPoolingWithArgmax2D(pool, stride, padding)(x)
    ref_pooled, ref_indices = tf_pool_with_argmax(x, pool, stride, padding)
    assert harness.to_numpy(indices).dtype == np.int32
    np.testing.assert_array_equal(harness.to_numpy(pooled), ref_pooled)
    np.testing.assert_array_equal(harness.to_numpy(indices), ref_indices)
    # The pooled values are those of keras' own MaxPooling2D.
    keras_pooled = keras.layers.MaxPooling2D(pool, stride, padding)(x)
    np.testing.assert_array_equal(harness.to_numpy(pooled), harness.to_numpy(keras_pooled))


@pytest.mark.parametrize("geometry", GEOMETRIES[:5] + GEOMETRIES[6:7], ids=geometry_id)
def test_pool_channels_first_gives_the_same_indices(geometry):
    """channels_first: the same channels_last-flattened index, transposed."""
    (h, w), pool, stride, padding = geometry
    x = random_input((2, h, w, 3), ties=True, seed=1)
    ref_pooled, ref_indices = tf_pool_with_argmax(x, pool, stride, padding)
    layer = MaxPoolingWithArgmax2D(pool, stride, padding, data_format="channels_first")
    pooled, indices = layer(to_channels_first(x))
    np.testing.assert_array_equal(harness.to_numpy(pooled), to_channels_first(ref_pooled))
    np.testing.assert_array_equal(harness.to_numpy(indices), to_channels_first(ref_indices))


@pytest.mark.parametrize("pool, stride", [(2, 2), (3, 2), (2, 1), (3, 3)])
def test_pool_tie_rule_matches_torch_max_pool2d(pool, stride):
    """Ties: the first maximum in scan order, as torch's max_pool2d picks it.

    torch's per-channel index y * W + x equals ours divided by channels.
    """
    import torch

    channels = 4
    x = random_input((2, 7, 9, channels), ties=True, seed=2)
    pooled, indices = MaxPoolingWithArgmax2D(pool, stride, "valid")(x)
    ref_pooled, ref_indices = torch.nn.functional.max_pool2d(
        torch.from_numpy(to_channels_first(x)), pool, stride, return_indices=True
    )
    np.testing.assert_array_equal(harness.to_numpy(pooled), to_channels_last(ref_pooled.numpy()))
    np.testing.assert_array_equal(
        harness.to_numpy(indices) // channels, to_channels_last(ref_indices.numpy())
    )
    # ... and the channel is recovered as index % channels.
    np.testing.assert_array_equal(
        harness.to_numpy(indices) % channels,
        np.broadcast_to(np.arange(channels), harness.to_numpy(indices).shape),
    )


def test_pool_all_equal_windows_point_at_the_first_position():
    """A constant image: every window's index is its top-left (first) pixel."""
    x = np.full((1, 4, 6, 2), -1.5, dtype="float32")
    pooled, indices = MaxPoolingWithArgmax2D(2)(x)
    expected = np.array(
        [[((y * 2) * 6 + x * 2) * 2 + c for x in range(3) for c in range(2)] for y in range(2)]
    ).reshape(1, 2, 3, 2)
    np.testing.assert_array_equal(harness.to_numpy(indices), expected)
    np.testing.assert_array_equal(harness.to_numpy(pooled), np.full((1, 2, 3, 2), -1.5))


def test_pool_same_padding_minus_inf_windows_point_into_the_image():
    """A window of only -inf values (plus -inf padding) still indexes a real pixel."""
    x = np.full((1, 3, 3, 1), -np.inf, dtype="float32")
    pooled, indices = MaxPoolingWithArgmax2D(3, 2, "same")(x)  # pads 1 on each side
    indices = harness.to_numpy(indices)
    assert indices.shape == (1, 2, 2, 1)
    assert np.all((indices >= 0) & (indices < 9)), indices
    assert np.all(np.isneginf(harness.to_numpy(pooled)))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_pool_and_unpool_mixed_precision(policy):
    """Low-precision values, int32 indices, the same indices as in float32."""
    x = random_input((2, 7, 9, 3), ties=False, seed=3)
    _, ref_indices = tf_pool_with_argmax(x, 2, 2, "valid")
    keras.config.set_dtype_policy(policy)
    pool = MaxPoolingWithArgmax2D(2)
    unpool = MaxUnpooling2D(2, output_size=(7, 9))
    pooled, indices = pool(x)
    restored = unpool([pooled, indices])
    compute = keras.DTypePolicy(policy).compute_dtype
    assert keras.backend.standardize_dtype(pooled.dtype) == compute
    assert keras.backend.standardize_dtype(indices.dtype) == "int32"
    assert keras.backend.standardize_dtype(restored.dtype) == compute
    # Rounding to low precision can create ties, so compare indices where the
    # float32 maximum is unique in low precision too: the picked value equals
    # the low-precision input there.
    low = harness.to_numpy(ops.cast(x, compute)).astype("float32").reshape(2, -1)
    picked = np.take_along_axis(low, harness.to_numpy(indices).reshape(2, -1), axis=1)
    harness.assert_allclose(picked.reshape(harness.to_numpy(pooled).shape), pooled, atol=0, rtol=0)
    harness.assert_allclose(
        restored,
        numpy_unpool(
            harness.to_numpy(pooled).astype("float32"),
            harness.to_numpy(indices),
            (2, 7, 9, 3),
        ),
        atol=0,
        rtol=0,
    )
    assert np.mean(harness.to_numpy(indices) == ref_indices) > 0.9


# --------------------------------------------------------------------------
# Unpooling
# --------------------------------------------------------------------------


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("geometry", NON_OVERLAPPING, ids=geometry_id)
def test_unpool_matches_torch_max_unpool2d(geometry, data_format):
    """Non-overlapping windows: equal to torch's max_unpool2d with output_size.

    torch takes NCHW values and per-channel indices y * W + x, i.e. ours
    divided by the number of channels (our indices flatten channels last).
    """
    import torch

    (h, w), pool, stride, padding = geometry
    channels = 3
    x = random_input((2, h, w, channels), ties=True, seed=4)
    pooled, indices = tf_pool_with_argmax(x, pool, stride, padding)
    expected = torch.nn.functional.max_unpool2d(
        torch.from_numpy(to_channels_first(pooled)),
        torch.from_numpy(to_channels_first(indices // channels)),
        pool,
        stride,
        output_size=(h, w),
    ).numpy()
    if data_format == "channels_last":
        expected = to_channels_last(expected)
        values, idx, reference = pooled, indices.astype("int32"), x
    else:
        values = to_channels_first(pooled)
        idx = to_channels_first(indices).astype("int32")
        reference = to_channels_first(x)
    kwargs = dict(pool_size=pool, strides=stride, padding=padding, data_format=data_format)
    from_reference = MaxUnpooling2D(**kwargs)([values, idx, reference])
    from_size = MaxUnpooling2D(**kwargs, output_size=(h, w))([values, idx])
    np.testing.assert_array_equal(harness.to_numpy(from_reference), expected)
    np.testing.assert_array_equal(harness.to_numpy(from_size), expected)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
def test_unpool_of_pool_equals_scatter_add_reference(geometry):
    """Every geometry; where windows overlap, values of a shared maximum sum."""
    (h, w), pool, stride, padding = geometry
    x = random_input((2, h, w, 3), ties=True, seed=5)
    ref_pooled, ref_indices = tf_pool_with_argmax(x, pool, stride, padding)
    expected = numpy_unpool(ref_pooled, ref_indices, x.shape)
    formats = [("channels_last", lambda a: a, lambda a: a)]
    if stride < pool:  # channels_first without overlap: the torch test above
        formats.append(("channels_first", to_channels_first, to_channels_last))
    for data_format, convert, back in formats:
        pool_layer = MaxPoolingWithArgmax2D(pool, stride, padding, data_format)
        unpool_layer = MaxUnpooling2D(pool, stride, padding, data_format)
        pooled, indices = pool_layer(convert(x))
        restored = unpool_layer([pooled, indices, convert(x)])
        np.testing.assert_array_equal(back(harness.to_numpy(restored)), expected)


@pytest.mark.parametrize(
    "pool, stride, padding, pooled_hw, expected_hw",
    [
        (2, 2, "valid", (3, 4), (6, 8)),  # 6x8 or 7x9 pool to 3x4: the smallest
        (2, 2, "same", (4, 5), (8, 10)),  # 7x9 or 8x10 pool to 4x5: the largest
        (3, 2, "valid", (3, 4), (7, 9)),  # (n - 1) * stride + pool, as torch
        (3, 2, "same", (4, 5), (8, 10)),  # n * stride
        (2, 1, "valid", (6, 8), (7, 9)),
    ],
)
def test_unpool_inferred_output_size(pool, stride, padding, pooled_hw, expected_hw):
    layer = MaxUnpooling2D(pool, stride, padding)
    shape = (2,) + pooled_hw + (3,)
    assert layer.compute_output_shape([shape, shape]) == (2,) + expected_hw + (3,)
    x = random_input((2,) + expected_hw + (3,), ties=False, seed=6)
    pooled, indices = MaxPoolingWithArgmax2D(pool, stride, padding)(x)
    assert tuple(pooled.shape) == shape
    restored = layer([pooled, indices])
    assert tuple(restored.shape) == (2,) + expected_hw + (3,)
    ref_pooled, ref_indices = tf_pool_with_argmax(x, pool, stride, padding)
    np.testing.assert_array_equal(
        harness.to_numpy(restored), numpy_unpool(ref_pooled, ref_indices, x.shape)
    )
    if padding == "valid" and torch_default_size_applies(stride, pool):
        import torch

        expected = torch.nn.functional.max_unpool2d(
            torch.from_numpy(to_channels_first(ref_pooled)),
            torch.from_numpy(to_channels_first(ref_indices // 3)),
            pool,
            stride,
        ).numpy()
        np.testing.assert_array_equal(harness.to_numpy(restored), to_channels_last(expected))


def torch_default_size_applies(stride, pool):
    # torch's max_unpool2d keeps the last write where windows overlap.
    return stride >= pool


# Non-square windows and strides: (input height, width), pool_size, strides,
# padding. A square pool hides a height/width mix-up.
NON_SQUARE = [
    ((8, 6), (2, 1), None, "valid"),
    ((7, 9), (1, 2), None, "same"),
    ((7, 9), (2, 1), (2, 1), "valid"),
    ((7, 8), (3, 2), None, "valid"),
    ((7, 9), (2, 3), (3, 2), "same"),  # a gap in height, overlap in width
    ((7, 9), (3, 1), (2, 1), "same"),  # overlap in height
]


def non_square_id(geometry):
    (h, w), pool, stride, padding = geometry
    stride = "default" if stride is None else f"{stride[0]}x{stride[1]}"
    return f"{h}x{w}-pool{pool[0]}x{pool[1]}-stride{stride}-{padding}"


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("geometry", NON_SQUARE, ids=non_square_id)
def test_non_square_pool_and_unpool_match_the_references(geometry, data_format):
    """Pooling against tf.nn, unpooling against the NumPy scatter-add and, for
    non-overlapping "valid" windows, torch's max_unpool2d; both formats."""
    (h, w), pool, stride, padding = geometry
    strides = pool if stride is None else stride
    x = random_input((2, h, w, 3), ties=True, seed=15)
    ref_pooled, ref_indices = tf_pool_with_argmax(x, pool, strides, padding)
    expected = numpy_unpool(ref_pooled, ref_indices, x.shape)
    if data_format == "channels_first":
        convert, back = to_channels_first, to_channels_last
    else:
        convert, back = (lambda a: a), (lambda a: a)
    pooled, indices = MaxPoolingWithArgmax2D(pool, stride, padding, data_format)(convert(x))
    np.testing.assert_array_equal(back(harness.to_numpy(pooled)), ref_pooled)
    np.testing.assert_array_equal(back(harness.to_numpy(indices)), ref_indices)
    kwargs = dict(pool_size=pool, strides=stride, padding=padding, data_format=data_format)
    from_reference = MaxUnpooling2D(**kwargs)([pooled, indices, convert(x)])
    from_size = MaxUnpooling2D(**kwargs, output_size=(h, w))([pooled, indices])
    np.testing.assert_array_equal(back(harness.to_numpy(from_reference)), expected)
    np.testing.assert_array_equal(back(harness.to_numpy(from_size)), expected)
    if padding == "valid" and strides[0] >= pool[0] and strides[1] >= pool[1]:
        import torch

        by_torch = torch.nn.functional.max_unpool2d(
            torch.from_numpy(to_channels_first(ref_pooled)),
            torch.from_numpy(to_channels_first(ref_indices // 3)),
            pool,
            strides,
            output_size=(h, w),
        ).numpy()
        np.testing.assert_array_equal(to_channels_last(by_torch), expected)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("pool", [(2, 1), (1, 2), (3, 2)])
def test_non_square_unpool_inferred_size_puts_each_value_at_its_index(pool, data_format):
    """No third input nor output_size: the size is pooled size x pool."""
    h, w = 3 * pool[0] * 2, 2 * pool[1] * 2
    x = random_input((2, h, w, 3), ties=False, seed=16)
    ref_pooled, ref_indices = tf_pool_with_argmax(x, pool, pool, "valid")
    convert = to_channels_first if data_format == "channels_first" else (lambda a: a)
    pooled, indices = convert(ref_pooled), convert(ref_indices.astype("int32"))
    restored = MaxUnpooling2D(pool, data_format=data_format)([pooled, indices])
    expected = convert(numpy_unpool(ref_pooled, ref_indices, x.shape))
    assert tuple(restored.shape) == expected.shape
    np.testing.assert_array_equal(harness.to_numpy(restored), expected)


# --------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "geometry, data_format",
    [
        (GEOMETRIES[1], "channels_last"),  # 7x9, pool 2, valid
        (GEOMETRIES[1], "channels_first"),
        (GEOMETRIES[2], "channels_last"),  # 7x9, pool 2, same
        (GEOMETRIES[4], "channels_first"),  # 7x9, pool 3, same
        (GEOMETRIES[6], "channels_last"),  # 7x9, pool 3, stride 2, same
        (GEOMETRIES[8], "channels_first"),  # 6x7, pool 3, stride 1, same
    ],
    ids=lambda v: geometry_id(v) if isinstance(v, tuple) else v,
)
def test_gradient_reaches_only_the_maxima(geometry, data_format):
    """d sum(w * unpool(pool(x))) / dx = w * (number of windows whose max is x).

    That is w at each window's maximum and 0 elsewhere without overlap.
    Distinct values (no ties) make the maxima and the reference unambiguous.
    """
    (h, w), pool, stride, padding = geometry
    x = random_input((2, h, w, 3), ties=False, seed=7)
    weights = random_input((2, h, w, 3), ties=False, seed=8)
    _, ref_indices = tf_pool_with_argmax(x, pool, stride, padding)
    counts = numpy_unpool(np.ones(ref_indices.shape, "float32"), ref_indices, x.shape)
    expected_grad = weights * counts
    expected_value = weights * counts * x
    convert = to_channels_first if data_format == "channels_first" else (lambda a: a)
    pool_layer = MaxPoolingWithArgmax2D(pool, stride, padding, data_format)
    unpool_layer = MaxUnpooling2D(pool, stride, padding, data_format)
    w_tensor = ops.convert_to_tensor(convert(weights))

    def fn(inputs):
        pooled, indices = pool_layer(inputs)
        return unpool_layer([pooled, indices, inputs]) * w_tensor

    value, grad = harness.value_and_gradient(fn, convert(x))
    harness.assert_allclose(value, convert(expected_value), atol=1e-6, rtol=1e-6)
    harness.assert_allclose(grad, convert(expected_grad), atol=1e-6, rtol=1e-6)
    if stride >= pool:
        assert np.count_nonzero(grad) == np.count_nonzero(convert(counts))


def test_unpool_gradient_with_respect_to_values_is_a_gather():
    """d sum(w * unpool(v)) / dv = w at each value's index (and nothing else)."""
    x = random_input((2, 7, 9, 3), ties=False, seed=9)
    weights = random_input((2, 7, 9, 3), ties=False, seed=10)
    pooled, indices = tf_pool_with_argmax(x, 3, 2, "same")
    indices = indices.astype("int32")
    layer = MaxUnpooling2D(3, 2, "same", output_size=(7, 9))
    w_tensor = ops.convert_to_tensor(weights)
    idx_tensor = ops.convert_to_tensor(indices)

    def fn(values):
        return layer([values, idx_tensor]) * w_tensor

    _, grad = harness.value_and_gradient(fn, pooled)
    expected = np.take_along_axis(weights.reshape(2, -1), indices.reshape(2, -1), axis=1).reshape(
        pooled.shape
    )
    harness.assert_allclose(grad, expected, atol=1e-6, rtol=1e-6)


def test_gradient_with_ties_goes_to_one_position_per_window():
    """Tied windows send the whole gradient to the index they report."""
    x = np.ones((1, 4, 4, 1), dtype="float32")
    layer = MaxPoolingWithArgmax2D(2)

    def fn(inputs):
        return layer(inputs)[0]

    _, grad = harness.value_and_gradient(fn, x)
    expected = np.zeros((1, 4, 4, 1), "float32")
    expected[0, ::2, ::2, 0] = 1.0
    harness.assert_allclose(grad, expected, atol=0, rtol=0)


# --------------------------------------------------------------------------
# Keras layer contract (harness)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "init_kwargs, input_shape, expected_shape",
    [
        ({"pool_size": 2}, (2, 7, 9, 3), (2, 3, 4, 3)),
        (
            {"pool_size": (3, 2), "strides": (2, 1), "padding": "same"},
            (2, 7, 9, 3),
            (2, 4, 9, 3),
        ),
        (
            {"pool_size": 2, "padding": "same", "data_format": "channels_first"},
            (2, 3, 7, 9),
            (2, 3, 4, 5),
        ),
    ],
)
def test_pool_layer_contract(init_kwargs, input_shape, expected_shape):
    harness.run_layer_test(
        MaxPoolingWithArgmax2D,
        init_kwargs,
        input_shape,
        expected_output_shape=[expected_shape, expected_shape],
        expected_output_dtype=["float32", "int32"],
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        expected_num_seed_generators=0,
    )


@pytest.mark.parametrize("with_reference", [False, True], ids=["output_size", "reference"])
@pytest.mark.parametrize(
    "init_kwargs, input_shape",
    [
        ({"pool_size": 2}, (2, 7, 9, 3)),
        ({"pool_size": 3, "strides": 2, "padding": "same"}, (2, 7, 9, 3)),
        ({"pool_size": 2, "data_format": "channels_first"}, (2, 3, 7, 9)),
    ],
)
def test_unpool_layer_contract(init_kwargs, input_shape, with_reference):
    x = random_input(input_shape, ties=False, seed=11)
    pool_kwargs = {k: v for k, v in init_kwargs.items()}
    pooled, indices = MaxPoolingWithArgmax2D(**pool_kwargs)(x)
    pooled, indices = harness.to_numpy(pooled), harness.to_numpy(indices)
    data_format = init_kwargs.get("data_format", "channels_last")
    spatial = input_shape[1:3] if data_format == "channels_last" else input_shape[2:]
    if with_reference:
        kwargs, data = dict(init_kwargs), [pooled, indices, x]
    else:
        kwargs, data = dict(init_kwargs, output_size=tuple(spatial)), [pooled, indices]
    harness.run_layer_test(
        MaxUnpooling2D,
        kwargs,
        input_data=data,
        expected_output_shape=input_shape,
        expected_output_dtype="float32",
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        expected_num_seed_generators=0,
    )


def test_get_config_lists_exactly_the_constructor_arguments():
    pool = MaxPoolingWithArgmax2D(3, 2, "SAME", "channels_first", name="p")
    unpool = MaxUnpooling2D((3, 2), None, "valid", "channels_last", (7, 9), name="u")
    base = set(keras.layers.Layer(name="x").get_config())
    assert set(pool.get_config()) - base == {"pool_size", "strides", "padding", "data_format"}
    assert set(unpool.get_config()) - base == {
        "pool_size",
        "strides",
        "padding",
        "data_format",
        "output_size",
    }
    assert pool.get_config()["pool_size"] == (3, 3)
    assert pool.get_config()["strides"] == (2, 2)
    assert pool.get_config()["padding"] == "same"
    assert unpool.get_config()["strides"] == (3, 2)
    assert unpool.get_config()["output_size"] == (7, 9)
    revived = MaxUnpooling2D.from_config(unpool.get_config())
    assert revived.get_config() == unpool.get_config()


# --------------------------------------------------------------------------
# Models: training under XLA, dynamic spatial sizes
# --------------------------------------------------------------------------


def build_pool_conv_unpool(input_shape, data_format="channels_last"):
    inputs = keras.Input(shape=input_shape)
    pooled, indices = MaxPoolingWithArgmax2D(2, data_format=data_format, name="pool")(inputs)
    features = keras.layers.Conv2D(
        input_shape[-1] if data_format == "channels_last" else input_shape[0],
        3,
        padding="same",
        data_format=data_format,
        name="conv",
    )(pooled)
    outputs = MaxUnpooling2D(2, data_format=data_format, name="unpool")([features, indices, inputs])
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_pool_conv_unpool_model_trains_one_step_under_jit(data_format):
    shape = (7, 9, 3) if data_format == "channels_last" else (3, 7, 9)
    model = build_pool_conv_unpool(shape, data_format)
    assert model.output_shape == (None,) + shape
    x = random_input((4,) + shape, ties=False, seed=12)
    y = random_input((4,) + shape, ties=False, seed=13)
    before = [harness.to_numpy(w).copy() for w in model.trainable_weights]
    history = harness.fit_one_step(model, x, y)
    assert np.isfinite(history.history["loss"][0])
    after = [harness.to_numpy(w) for w in model.trainable_weights]
    assert all(np.any(a != b) for a, b in zip(after, before))


def test_dynamic_spatial_size_model_and_traced_call():
    """A model on (None, None, 3) unpools each input to its own size, also traced."""
    model = build_pool_conv_unpool((None, None, 3))
    assert model.output_shape == (None, None, None, 3)
    for size in [(7, 9), (8, 6)]:
        x = random_input((2,) + size + (3,), ties=False, seed=14)
        eager = harness.to_numpy(model(x))
        assert eager.shape == (2,) + size + (3,)
        traced = harness.to_numpy(traced_call(model, x))
        harness.assert_allclose(traced, eager, atol=1e-5, rtol=1e-5)
        # Zeros everywhere except at most one position per 2x2 window.
        nonzero = np.count_nonzero(eager)
        assert 0 < nonzero <= 2 * (size[0] // 2) * (size[1] // 2) * 3


def traced_call(model, x):
    """The model compiled by the backend: XLA on TF (unknown spatial sizes in
    the signature) and JAX, torch.compile-free eager call on torch."""
    backend = harness.backend_name()
    if backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(
            lambda t: model(t),
            input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)],
            jit_compile=False,
        )
        graph_out = fn(tf.constant(x))
        xla = tf.function(lambda t: model(t), jit_compile=True)(tf.constant(x))
        harness.assert_allclose(xla, graph_out, atol=1e-5, rtol=1e-5)
        return graph_out
    if backend == "jax":
        import jax

        return jax.jit(lambda t: model(t))(x)
    return model(x)


def test_unpool_output_shape_with_unknown_reference_size():
    """Unknown pooling-input sizes: output_size fills them in, else None."""
    shapes = [(None, 3, 4, 2), (None, 3, 4, 2), (None, None, None, 2)]
    assert MaxUnpooling2D(2).compute_output_shape(shapes) == (None, None, None, 2)
    assert MaxUnpooling2D(2, output_size=(7, 9)).compute_output_shape(shapes) == (None, 7, 9, 2)
    assert MaxUnpooling2D(2).compute_output_shape(shapes[:2]) == (None, 6, 8, 2)


def test_docstring_examples_run():
    import doctest

    from keras_cvlec.layers import unpooling

    result = doctest.testmod(
        unpooling, extraglobs={"keras": keras}, optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted >= 10
    assert result.failed == 0


# --------------------------------------------------------------------------
# Bad arguments and inputs
# --------------------------------------------------------------------------


@pytest.mark.parametrize("layer_cls", [MaxPoolingWithArgmax2D, MaxUnpooling2D])
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"pool_size": 0}, ValueError, r"pool_size=0"),
        ({"pool_size": (2, 0)}, ValueError, r"pool_size=\(2, 0\)"),
        ({"pool_size": 2.0}, TypeError, r"pool_size=2.0"),
        ({"pool_size": (2, 2, 2)}, ValueError, r"pool_size=\(2, 2, 2\)"),
        ({"strides": -1}, ValueError, r"strides=-1"),
        ({"strides": True}, TypeError, r"strides=True"),
        ({"padding": "full"}, ValueError, r"padding.*'full'"),
        ({"padding": 1}, TypeError, r"padding=1"),
        (
            {"data_format": "channels_middle"},
            ValueError,
            r"data_format.*channels_middle",
        ),
    ],
)
def test_bad_arguments(layer_cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        layer_cls(**kwargs)


def test_bad_output_size():
    with pytest.raises(ValueError, match=r"output_size=\(7, 0\)"):
        MaxUnpooling2D(output_size=(7, 0))
    with pytest.raises(TypeError, match=r"output_size='7x9'"):
        MaxUnpooling2D(output_size="7x9")


def test_unpool_bad_inputs():
    x = random_input((1, 7, 9, 2), ties=False)
    pooled, indices = MaxPoolingWithArgmax2D(2)(x)
    layer = MaxUnpooling2D(2)
    with pytest.raises(TypeError, match=r"list \[values, indices\].*single"):
        layer(pooled)
    with pytest.raises(TypeError, match=r"list \[values, indices\].*single"):
        layer(keras.Input((3, 4, 2)))
    with pytest.raises(ValueError, match=r"Received 1 inputs"):
        layer([pooled])
    with pytest.raises(TypeError, match=r"integer tensor"):
        layer([pooled, ops.cast(indices, "float32")])
    # An output size that does not pool to the values' size.
    with pytest.raises(ValueError, match=r"pools to 5"):
        MaxUnpooling2D(2, output_size=(10, 9))([pooled, indices])
    with pytest.raises(ValueError, match=r"differs from the spatial size"):
        MaxUnpooling2D(2, output_size=(6, 8))([pooled, indices, x])
    with pytest.raises(ValueError, match=r"same shape"):
        layer.compute_output_shape([(1, 3, 4, 2), (1, 3, 5, 2)])


def test_pool_bad_inputs():
    with pytest.raises(ValueError, match=r"smaller than pool_size"):
        MaxPoolingWithArgmax2D(3)(np.zeros((1, 2, 5, 1), "float32"))
    with pytest.raises(ValueError):
        MaxPoolingWithArgmax2D(2)(np.zeros((1, 4, 4), "float32"))
