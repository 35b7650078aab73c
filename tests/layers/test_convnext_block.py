"""ConvNeXtBlock and ChannelLayerNormalization against NumPy re-implementations.

The reference block is written from the paper's formula with NumPy only:
a 7x7 depthwise "same" convolution as a sum of 49 shifted slices, layer norm
over channels, GELU from the error function (`math.erf`, vectorised), two
matmuls and the layer-scale vector. Weight counts are computed by hand.
"""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_cvlec.layers import ChannelLayerNormalization, ConvNeXtBlock
from tests import harness

CHANNELS = 8
SHAPE_LAST = (2, 9, 7, CHANNELS)  # odd, unequal sizes: padding shows
_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu_exact(x):
    """x * Phi(x), Phi the standard normal CDF, from the error function."""
    return x * 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def layer_norm(x, gamma, beta, epsilon=1e-6):
    mean = x.mean(axis=-1, keepdims=True)
    variance = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def depthwise_same(x, kernel, bias):
    """channels_last x, kernel (k, k, C, 1): stride 1, zero 'same' padding."""
    size = kernel.shape[0]
    pad = size // 2
    height, width = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.zeros_like(x)
    for a in range(size):
        for b in range(size):
            out += padded[:, a : a + height, b : b + width, :] * kernel[a, b, :, 0]
    return out + bias


def reference_block(x, weights, approximate=False):
    """The ConvNeXt block in float64 NumPy; `weights` in the layer's order."""
    x = x.astype(np.float64)
    weights = [w.astype(np.float64) for w in weights]
    dw_kernel, dw_bias, ln_gamma, ln_beta, w1, b1, w2, b2, *scale = weights
    y = depthwise_same(x, dw_kernel, dw_bias)
    y = layer_norm(y, ln_gamma, ln_beta)
    y = y @ w1 + b1
    y = gelu_tanh(y) if approximate else gelu_exact(y)
    y = y @ w2 + b2
    if scale:
        y = y * scale[0]
    return x + y


def random_weights(layer, seed=0):
    """Replaces every weight of `layer` by N(0, 0.3^2) numbers (1 + that for
    scales), so that each one changes the output visibly."""
    rng = np.random.default_rng(seed)
    values = []
    for weight in layer.weights:
        value = rng.normal(0.0, 0.3, weight.shape).astype("float32")
        if weight.path.endswith("gamma"):
            value += 1.0
        values.append(value)
    layer.set_weights(values)
    return values


def num_block_params(channels, layer_scale):
    depthwise = 7 * 7 * channels + channels
    norm = 2 * channels
    expand = channels * 4 * channels + 4 * channels
    project = 4 * channels * channels + channels
    return depthwise + norm + expand + project + (channels if layer_scale else 0)


@pytest.mark.parametrize(
    "data_format, layer_scale_init_value, drop_path_rate, gelu_approximate",
    [
        # Each data format, with and without layer scale, each GELU form
        # (two cases: each run compiles a training step and four mixed
        # precision variants).
        ("channels_last", 1e-6, 0.0, False),
        ("channels_first", None, 0.2, True),
    ],
)
def test_layer_contract(data_format, layer_scale_init_value, drop_path_rate, gelu_approximate):
    shape = SHAPE_LAST if data_format == "channels_last" else (2, CHANNELS, 9, 7)
    layer = harness.run_layer_test(
        ConvNeXtBlock,
        {
            "drop_path_rate": drop_path_rate,
            "layer_scale_init_value": layer_scale_init_value,
            "gelu_approximate": gelu_approximate,
            "data_format": data_format,
            "seed": 3,
        },
        shape,
        expected_output_shape=shape,
        expected_output_dtype="float32",
        # depthwise kernel+bias, norm gamma+beta, 2x Dense kernel+bias, [gamma]
        expected_num_trainable_weights=9 if layer_scale_init_value else 8,
        expected_num_non_trainable_weights=0,
        expected_num_seed_generators=1,
    )
    assert layer.count_params() == num_block_params(CHANNELS, layer_scale_init_value)
    # 8 * 8^2 + 58 * 8 (+ 8): the formula written out once.
    assert layer.count_params() == (976 if layer_scale_init_value else 968)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_channel_layer_norm_contract(data_format):
    shape = (2, 5, 3, 4) if data_format == "channels_last" else (2, 4, 5, 3)
    harness.run_layer_test(
        ChannelLayerNormalization,
        {"epsilon": 1e-6, "data_format": data_format},
        shape,
        expected_output_shape=shape,
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
        expected_num_seed_generators=0,
    )


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_channel_layer_norm_matches_numpy_and_keras(data_format):
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, (2, 5, 3, 6)).astype("float32")
    gamma, beta = rng.normal(size=(2, 6)).astype("float32")
    expected = layer_norm(x.astype(np.float64), gamma, beta)
    norm = ChannelLayerNormalization(data_format=data_format)
    inputs = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    norm.build(inputs.shape)
    norm.set_weights([gamma, beta])
    got = harness.to_numpy(norm(inputs))
    if data_format == "channels_first":
        got = got.transpose(0, 2, 3, 1)
    harness.assert_allclose(got, expected, atol=2e-5, rtol=1e-5)
    # Same weights, same numbers as the stock layer (weights transfer).
    stock = keras.layers.LayerNormalization(epsilon=1e-6)
    stock.build(x.shape)
    stock.set_weights([gamma, beta])
    harness.assert_allclose(got, stock(x), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("layer_scale_init_value", [1e-6, None])
@pytest.mark.parametrize("gelu_approximate", [False, True])
def test_block_matches_numpy_formula(layer_scale_init_value, gelu_approximate):
    x = np.random.default_rng(2).normal(size=SHAPE_LAST).astype("float32")
    block = ConvNeXtBlock(
        layer_scale_init_value=layer_scale_init_value,
        gelu_approximate=gelu_approximate,
        data_format="channels_last",
    )
    block.build(x.shape)
    weights = random_weights(block)
    got = harness.to_numpy(block(x))
    expected = reference_block(x, weights, approximate=gelu_approximate)
    harness.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)
    # The branch matters: the output is far from the bare residual.
    assert np.max(np.abs(got - x)) > 0.5
    if gelu_approximate:
        # ... and so does the GELU form: the exact one is not what was computed.
        exact = reference_block(x, weights, approximate=False)
        assert np.max(np.abs(exact - expected)) > 1e-4


def test_initial_layer_scale_value_and_weight_paths():
    block = ConvNeXtBlock(layer_scale_init_value=0.25, data_format="channels_last", name="block")
    block.build(SHAPE_LAST)
    harness.assert_allclose(block.layer_scale.gamma, np.full(CHANNELS, 0.25), atol=0)
    assert [w.path for w in block.weights] == [
        "block/depthwise_conv/kernel",
        "block/depthwise_conv/bias",
        "block/norm/gamma",
        "block/norm/beta",
        "block/pointwise_conv1/kernel",
        "block/pointwise_conv1/bias",
        "block/pointwise_conv2/kernel",
        "block/pointwise_conv2/bias",
        "block/layer_scale/gamma",
    ]
    assert tuple(block.depthwise_conv.kernel.shape) == (7, 7, CHANNELS, 1)


def test_gelu_exact_and_tanh():
    grid = np.linspace(-6.0, 6.0, 2401).astype("float32")
    exact = harness.to_numpy(ops.gelu(grid, approximate=False))
    approx = harness.to_numpy(ops.gelu(grid, approximate=True))
    reference = gelu_exact(grid.astype(np.float64))
    harness.assert_allclose(exact, reference, atol=2e-6, rtol=1e-6)
    harness.assert_allclose(approx, gelu_tanh(grid.astype(np.float64)), atol=2e-6, rtol=1e-6)
    difference = np.max(np.abs(approx - reference))
    assert 1e-5 < difference < 1e-3


def test_channels_first_equals_channels_last():
    x = np.random.default_rng(3).normal(size=SHAPE_LAST).astype("float32")
    last = ConvNeXtBlock(data_format="channels_last")
    first = ConvNeXtBlock(data_format="channels_first")
    last.build(x.shape)
    first.build(x.transpose(0, 3, 1, 2).shape)
    weights = random_weights(last)
    first.set_weights(weights)  # the same shapes in both formats
    got = harness.to_numpy(first(x.transpose(0, 3, 1, 2))).transpose(0, 2, 3, 1)
    harness.assert_allclose(got, last(x), atol=1e-5, rtol=1e-5)


def test_drop_path_drops_whole_samples():
    x = np.random.default_rng(4).normal(size=(16, 5, 5, CHANNELS)).astype("float32")
    block = ConvNeXtBlock(drop_path_rate=0.5, data_format="channels_last", seed=1)
    block.build(x.shape)
    weights = random_weights(block)
    branch = reference_block(x, weights) - x
    harness.assert_allclose(block(x, training=False), x + branch, atol=2e-4, rtol=1e-4)
    got = harness.to_numpy(block(x, training=True))
    dropped = kept = 0
    for sample in range(len(x)):
        if np.allclose(got[sample], x[sample], atol=1e-6):
            dropped += 1
        else:
            # A kept branch is scaled by 1 / (1 - rate) = 2.
            harness.assert_allclose(
                got[sample], x[sample] + 2.0 * branch[sample], atol=5e-4, rtol=1e-4
            )
            kept += 1
    assert dropped > 0 and kept > 0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"layer_scale_init_value": 0.0}, ValueError, r"layer_scale_init_value=0\.0"),
        ({"layer_scale_init_value": -1e-6}, ValueError, r"layer_scale_init_value=-1e-06"),
        ({"layer_scale_init_value": "small"}, TypeError, r"layer_scale_init_value='small'"),
        ({"layer_scale_init_value": True}, TypeError, r"layer_scale_init_value=True"),
        (
            {"layer_scale_init_value": float("inf")},
            ValueError,
            r"must be a finite float > 0\.0\. Received: layer_scale_init_value=inf",
        ),
        ({"drop_path_rate": 1.0}, ValueError, r"drop_path_rate=1\.0"),
        ({"gelu_approximate": "tanh"}, TypeError, r"gelu_approximate='tanh'"),
        ({"data_format": "NHWC"}, ValueError, r"data_format.*'NHWC'"),
        ({"seed": 1.5}, TypeError, r"seed=1\.5"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ConvNeXtBlock(**kwargs)


def test_unknown_channels():
    with pytest.raises(ValueError, match="known channel dimension"):
        ConvNeXtBlock(data_format="channels_last").build((None, 8, 8, None))
    with pytest.raises(ValueError, match=r"epsilon=0"):
        ChannelLayerNormalization(epsilon=0)
