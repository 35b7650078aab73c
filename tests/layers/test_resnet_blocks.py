"""ResNet basic and bottleneck blocks, versions v1, v1.5 and v2."""

import numpy as np
import pytest

from keras_cvlec.layers import ResNetBasicBlock, ResNetBottleneckBlock
from tests.harness import assert_allclose, run_layer_test, to_numpy

# (block, version, strides, input channels, filters, output shape,
#  trainable weights, non-trainable weights), counted by hand:
#  - a conv is 1 weight (kernel) or 2 (kernel + bias); a BN is 2 trainable
#    (gamma, beta) + 2 non-trainable (moving mean, moving variance);
#  - v1: every conv has a bias; v1.5: no conv bias; v2: a pre-activation BN,
#    no BN after the branch's last conv, which (like the shortcut conv) has
#    a bias;
#  - the shortcut is a 1x1 conv (+ BN in v1/v1.5) when the channels change,
#    or when the stride is 2 in v1/v1.5; a v2 block that only strides uses a
#    1x1 max pooling (no weights).
CASES = [
    # basic: conv3x3 + BN, conv3x3 + BN
    (ResNetBasicBlock, "v1", 1, 8, 8, (2, 8, 8, 8), 2 * 2 + 2 * 2, 2 * 2),
    (ResNetBasicBlock, "v1", 2, 8, 8, (2, 4, 4, 8), 3 * 2 + 3 * 2, 3 * 2),
    (ResNetBasicBlock, "v1.5", 1, 8, 8, (2, 8, 8, 8), 2 * 1 + 2 * 2, 2 * 2),
    (ResNetBasicBlock, "v1.5", 2, 8, 8, (2, 4, 4, 8), 3 * 1 + 3 * 2, 3 * 2),
    (ResNetBasicBlock, "v1.5", 1, 4, 8, (2, 8, 8, 8), 3 * 1 + 3 * 2, 3 * 2),
    # v2 basic: preact BN, conv1 (no bias) + BN, conv2 (bias)
    (ResNetBasicBlock, "v2", 1, 8, 8, (2, 8, 8, 8), 2 + 1 + 2 + 2, 2 + 2),
    (ResNetBasicBlock, "v2", 2, 8, 8, (2, 4, 4, 8), 2 + 1 + 2 + 2, 2 + 2),
    # bottleneck: 1x1, 3x3, 1x1 (4 * filters out)
    (ResNetBottleneckBlock, "v1", 1, 16, 4, (2, 8, 8, 16), 3 * 2 + 3 * 2, 3 * 2),
    (ResNetBottleneckBlock, "v1", 2, 8, 4, (2, 4, 4, 16), 4 * 2 + 4 * 2, 4 * 2),
    (ResNetBottleneckBlock, "v1.5", 1, 16, 4, (2, 8, 8, 16), 3 * 1 + 3 * 2, 3 * 2),
    (ResNetBottleneckBlock, "v1.5", 2, 8, 4, (2, 4, 4, 16), 4 * 1 + 4 * 2, 4 * 2),
    # v2 bottleneck: preact BN, conv1 + BN, conv2 + BN, conv3 (bias)
    (ResNetBottleneckBlock, "v2", 1, 16, 4, (2, 8, 8, 16), 2 + 3 + 3 + 2, 2 + 4),
    # ... + shortcut conv with bias (channels change)
    (ResNetBottleneckBlock, "v2", 2, 8, 4, (2, 4, 4, 16), 2 + 3 + 3 + 2 + 2, 2 + 4),
    # ... stride only: 1x1 max pooling shortcut
    (ResNetBottleneckBlock, "v2", 2, 16, 4, (2, 4, 4, 16), 2 + 3 + 3 + 2, 2 + 4),
]


# Stochastic depth in two of the cases: the harness's training check then
# fits a block with drop_path_rate > 0 and a seed under XLA (TF, JAX).
DROP_PATH = {
    (ResNetBasicBlock, "v1.5", 1, 8): {"drop_path_rate": 0.5, "seed": 3},
    (ResNetBottleneckBlock, "v2", 1, 16): {"drop_path_rate": 0.2, "seed": 1},
}
# Stride-1 projection: the same convolutions as the trained stride-2
# projections, so its (slow, XLA-compiled) training check is left out.
NO_TRAINING = {(ResNetBasicBlock, "v1.5", 1, 4)}


def case_id(case):
    block, version, strides, channels, filters = case[:5]
    extra = "-drop_path" if (block, version, strides, channels) in DROP_PATH else ""
    return f"{block.__name__}-{version}-s{strides}-in{channels}-f{filters}{extra}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_layer_contract(case):
    block, version, strides, channels, filters, out_shape, trainable, frozen = case
    key = (block, version, strides, channels)
    run_layer_test(
        block,
        {
            "filters": filters,
            "strides": strides,
            "version": version,
            **DROP_PATH.get(key, {}),
        },
        (2, 8, 8, channels),
        expected_output_shape=out_shape,
        expected_output_dtype="float32",
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=frozen,
        expected_num_seed_generators=1,
        run_training_check=key not in NO_TRAINING,
    )


def test_projection_parameter_count_v1_bottleneck():
    # 8 -> 4 -> 4 -> 16 channels, shortcut 8 -> 16, all convs with bias.
    block = ResNetBottleneckBlock(4, strides=2, version="v1")
    block.build((None, 8, 8, 8))
    convs = (8 * 4 + 4) + (9 * 4 * 4 + 4) + (4 * 16 + 16) + (8 * 16 + 16)
    norms = 4 * (4 + 4 + 16 + 16)  # gamma, beta, mean, variance
    assert block.count_params() == convs + norms


def randomize(block, seed=0):
    """Random weights and BN statistics, so every weight matters."""
    rng = np.random.default_rng(seed)
    for weight in block.weights:
        shape = tuple(weight.shape)
        if weight.path.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif weight.path.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.normal(0.0, 0.3, shape)
        weight.assign(value.astype("float32"))


@pytest.mark.parametrize("block_cls", [ResNetBasicBlock, ResNetBottleneckBlock])
@pytest.mark.parametrize("version", ["v1", "v1.5", "v2"])
def test_channels_first_equals_channels_last(block_cls, version):
    # 4 filters on a 4x4 output: channels == width, the shape of the Keras
    # bias bug that keras_cvlec/layers/convolution.py's docstring records.
    x = np.random.default_rng(1).standard_normal((2, 7, 7, 8)).astype("float32")
    last = block_cls(4, strides=2, version=version, data_format="channels_last")
    first = block_cls(4, strides=2, version=version, data_format="channels_first")
    last.build(x.shape)
    first.build((2, 8, 7, 7))
    randomize(last)
    # Conv kernels and BN vectors have the same layout in both formats.
    first.set_weights(last.get_weights())
    x_first = np.transpose(x, (0, 3, 1, 2))
    for training in (False, True):
        y_last = to_numpy(last(x, training=training))
        y_first = to_numpy(first(x_first, training=training))
        assert y_last.shape == (2, 4, 4, 4 * block_cls.expansion)
        assert_allclose(np.transpose(y_first, (0, 2, 3, 1)), y_last, atol=1e-4, rtol=1e-4)


def torch_reference(block, x, keras_same_padding=False):
    """torchvision's BasicBlock / Bottleneck (v1.5) in torch.nn.functional.

    Strided 3x3 convolutions pad 1 pixel on every side (`padding=1`), batch
    norm runs in eval mode with the block's moving statistics. With
    `keras_same_padding=True` the strided 3x3 convolution pads as Keras's
    `padding="same"` does instead (the extra pixel after, none before on an
    even input): the numbers a naive Keras port would give.
    """
    import torch
    import torch.nn.functional as F

    weights = {
        w.path.split("/", 1)[1]: torch.from_numpy(np.array(to_numpy(w))) for w in block.weights
    }

    def conv(t, name, stride, padding):
        kernel = weights[f"{name}/kernel"].permute(3, 2, 0, 1)  # HWIO -> OIHW
        if keras_same_padding and stride > 1 and padding:
            size = t.shape[-1]
            total = max((-(-size // stride) - 1) * stride + 3 - size, 0)
            before = total // 2
            t = F.pad(t, (before, total - before, before, total - before))
            padding = 0
        return F.conv2d(t, kernel, stride=stride, padding=padding)

    def bn(t, name):
        return F.batch_norm(
            t,
            weights[f"{name}/moving_mean"],
            weights[f"{name}/moving_variance"],
            weights[f"{name}/gamma"],
            weights[f"{name}/beta"],
            training=False,
            eps=1e-5,
        )

    stride = block.strides
    with torch.no_grad():
        t = torch.from_numpy(np.transpose(x, (0, 3, 1, 2)))
        if isinstance(block, ResNetBasicBlock):
            out = F.relu(bn(conv(t, "conv1", stride, 1), "bn1"))
            out = bn(conv(out, "conv2", 1, 1), "bn2")
        else:
            out = F.relu(bn(conv(t, "conv1", 1, 0), "bn1"))
            out = F.relu(bn(conv(out, "conv2", stride, 1), "bn2"))
            out = bn(conv(out, "conv3", 1, 0), "bn3")
        if "shortcut_conv/kernel" in weights:
            shortcut = bn(conv(t, "shortcut_conv", stride, 0), "shortcut_bn")
        else:
            shortcut = t
        y = F.relu(out + shortcut)
    return np.transpose(y.numpy(), (0, 2, 3, 1))


@pytest.mark.parametrize("size", [8, 7], ids=["even", "odd"])
@pytest.mark.parametrize(
    "block_cls, channels, filters",
    [(ResNetBasicBlock, 4, 8), (ResNetBottleneckBlock, 8, 4)],
    ids=["basic", "bottleneck"],
)
def test_v1_5_matches_torch_functional_with_symmetric_padding(block_cls, channels, filters, size):
    x = np.random.default_rng(2).standard_normal((2, size, size, channels))
    x = x.astype("float32")
    block = block_cls(filters, strides=2, version="v1.5")
    block.build(x.shape)
    randomize(block, seed=3)
    y = to_numpy(block(x, training=False))
    expected = torch_reference(block, x)
    out_size = (size + 1) // 2
    assert y.shape == (2, out_size, out_size, filters * block_cls.expansion)
    assert_allclose(y, expected, atol=1e-4, rtol=1e-4)
    # Keras "same" padding of an even input (pad 0 before, 1 after) gives
    # other numbers, so the check above is sensitive to the padding; on an
    # odd input both pad 1 on each side and agree.
    same = torch_reference(block, x, keras_same_padding=True)
    if size % 2 == 0:
        assert not np.allclose(same, y, atol=1e-2)
    else:
        assert_allclose(same, expected, atol=1e-6, rtol=1e-6)


def test_v1_5_identity_block_matches_torch_functional():
    x = np.random.default_rng(4).standard_normal((2, 6, 6, 8)).astype("float32")
    block = ResNetBasicBlock(8, strides=1, version="v1.5")
    block.build(x.shape)
    randomize(block, seed=5)
    assert block.shortcut_conv is None
    assert_allclose(block(x), torch_reference(block, x), atol=1e-4, rtol=1e-4)


def test_drop_path_drops_whole_branches_per_sample():
    # Training with drop_path_rate > 0 and a seed (fit under XLA) is covered
    # by the "-drop_path" cases of test_layer_contract.
    x = np.random.default_rng(6).standard_normal((32, 6, 6, 8)).astype("float32")
    block = ResNetBasicBlock(8, version="v1.5", drop_path_rate=0.5, seed=1)
    block.build(x.shape)
    randomize(block, seed=7)
    relu_x = np.maximum(x, 0.0)
    # Identity shortcut: a dropped branch leaves exactly relu(x) for the
    # sample (BN in training mode uses the batch statistics).
    y = to_numpy(block(x, training=True))
    dropped = np.all(np.isclose(y, relu_x), axis=(1, 2, 3))
    assert 4 <= dropped.sum() <= 28, dropped
    # Same seed, same drops.
    again = ResNetBasicBlock(8, version="v1.5", drop_path_rate=0.5, seed=1)
    again.build(x.shape)
    again.set_weights(block.get_weights())
    y_again = to_numpy(again(x, training=True))
    assert np.array_equal(np.all(np.isclose(y_again, relu_x), axis=(1, 2, 3)), dropped)
    # Inference never drops: deterministic and no sample equals relu(x).
    y1, y2 = to_numpy(block(x)), to_numpy(block(x))
    assert np.array_equal(y1, y2)
    assert not np.any(np.all(np.isclose(y1, relu_x), axis=(1, 2, 3)))
    # A block without drop path and the same weights never drops.
    plain = ResNetBasicBlock(8, version="v1.5")
    plain.build(x.shape)
    plain.set_weights(block.get_weights())
    y_plain = to_numpy(plain(x, training=True))
    assert not np.any(np.all(np.isclose(y_plain, relu_x), axis=(1, 2, 3)))


def test_drop_path_scales_kept_branches_by_inverse_keep_probability():
    # v2 has no final relu: out = x + mask * branch / keep_prob exactly.
    x = np.random.default_rng(8).standard_normal((32, 6, 6, 8)).astype("float32")
    block = ResNetBasicBlock(8, version="v2", drop_path_rate=0.25, seed=2)
    plain = ResNetBasicBlock(8, version="v2")
    block.build(x.shape)
    plain.build(x.shape)
    randomize(block, seed=9)
    plain.set_weights(block.get_weights())
    branch = to_numpy(plain(x, training=True)) - x
    dropped_or_kept = to_numpy(block(x, training=True)) - x
    kept = np.any(dropped_or_kept != 0, axis=(1, 2, 3))
    assert 0 < (~kept).sum() < 16, kept
    assert_allclose(dropped_or_kept[~kept], np.zeros_like(x[~kept]), atol=0, rtol=0)
    assert_allclose(dropped_or_kept[kept], branch[kept] / np.float32(0.75), atol=1e-5, rtol=1e-5)


def test_batch_norm_settings_per_version():
    settings = {}
    for version in ("v1", "v1.5", "v2"):
        block = ResNetBottleneckBlock(4, version=version)
        block.build((1, 4, 4, 16))
        norm = block.branch_norms[0]
        settings[version] = (norm.epsilon, norm.momentum)
    assert settings == {"v1": (1.001e-5, 0.99), "v1.5": (1e-5, 0.9), "v2": (1.001e-5, 0.99)}


@pytest.mark.parametrize("block_cls", [ResNetBasicBlock, ResNetBottleneckBlock])
@pytest.mark.parametrize(
    "kwargs, error, argument",
    [
        ({"filters": 0}, ValueError, "filters"),
        ({"filters": -4}, ValueError, "filters"),
        ({"filters": 8.0}, TypeError, "filters"),
        ({"filters": 8, "strides": 3}, ValueError, "strides"),
        ({"filters": 8, "version": "v3"}, ValueError, "version"),
        ({"filters": 8, "drop_path_rate": 1.0}, ValueError, "drop_path_rate"),
        ({"filters": 8, "drop_path_rate": -0.1}, ValueError, "drop_path_rate"),
        ({"filters": 8, "data_format": "NHWC"}, ValueError, "data_format"),
        ({"filters": 8, "seed": 0.5}, TypeError, "seed"),
    ],
)
def test_bad_arguments_name_the_argument(block_cls, kwargs, error, argument):
    with pytest.raises(error, match=f"`{argument}`"):
        block_cls(**kwargs)


def test_unknown_channels_are_refused():
    with pytest.raises(ValueError, match="channel"):
        ResNetBasicBlock(8).build((None, 8, 8, None))
