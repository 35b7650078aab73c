"""`keras_cvlec.build_resnet` (v1, v1.5, v2) and its registry entries.

References: parameter counts of keras.applications `ResNet50/101/152` and
`ResNet50V2` and of torchvision `resnet18/34/50` (trainable parameters;
REFERENCES.md; tests/test_weights.py compares outputs with keras.applications);
v1.5 logits against a torch.nn.functional re-implementation of torchvision's
ResNet; output sizes from PyTorch's convolution formula
`floor((n + 2 p - k) / s) + 1`; pooling, softmax and the classifier
recomputed in NumPy; channels_first against channels_last with the same
weights.

Cost: every large model is built once per process (one parametrized test,
the ResNet-50s kept in a module-scoped cache for the shape tests); the other
tests share one random ResNet-18 per version and use 32..96 pixels, batch 2.
Training under XLA compiles one ResNet-18 v1 step (about 15 s of
CPU on TF/JAX).
"""

import keras
import numpy as np
import pytest

import keras_cvlec
from keras_cvlec.models.resnet import RESNET_VARIANTS
from keras_cvlec.utils import structure_only
from tests import harness

VERSIONS = ("v1", "v1.5", "v2")
STAGE_NAMES = tuple(f"stage{level}_output" for level in range(1, 5))
STAGE_WIDTHS = (64, 128, 256, 512)


def _random_images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _conv_size(size, kernel, stride, padding):
    """PyTorch's output size of a convolution or pooling."""
    return (size + 2 * padding - kernel) // stride + 1


def _expected_stage_sizes(size):
    """Stage 1..4 spatial sizes of a ResNet for one input side (torchvision)."""
    size = _conv_size(size, 7, 2, 3)  # stem convolution
    size = _conv_size(size, 3, 2, 1)  # stem max pooling
    sizes = [size]
    for _ in range(3):
        size = _conv_size(size, 3, 2, 1)  # strided 3x3 of each later stage
        sizes.append(size)
    return sizes


def _feature_model(model, extra=()):
    """`model` with the stage outputs (and `extra` layer outputs) as outputs."""
    outputs = [model.get_layer(name).output for name in STAGE_NAMES + tuple(extra)]
    return keras.Model(model.input, outputs)


def _softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def _weights_changed(before, model):
    """Paths of the weights of `model` whose value differs from `before`."""
    return {
        weight.path
        for weight, old in zip(model.weights, before)
        if not np.array_equal(harness.to_numpy(weight), old)
    }


# --------------------------------------------------------------------------
# Shared models: each built once per process
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_models():
    """Lazily built models shared by the tests of this module.

    `shared_models("resnet18", version)`: ResNet-18, 7 classes, logits,
    `drop_path_rate=0.2`, `(None, None, 3)` input, random weights (BN moving
    statistics included). `shared_models("resnet50", version)`: the default
    `build_resnet("resnet50", version=version)`. Tests only read them, except
    the training tests at the end of the module.
    """
    cache = {}

    def get(variant, version):
        key = (variant, version)
        if key not in cache:
            if variant == "resnet18":
                model = keras_cvlec.build_resnet(
                    "resnet18",
                    version=version,
                    num_classes=7,
                    classifier_activation=None,
                    drop_path_rate=0.2,
                )
                harness.randomize_weights(model, seed=len(cache) + 1)
            else:
                model = keras_cvlec.build_resnet(variant, version=version)
            cache[key] = model
        return cache[key]

    yield get
    cache.clear()


# --------------------------------------------------------------------------
# Parameter counts: each large model is built once per process
# --------------------------------------------------------------------------

# (variant, version, Keras count_params = keras.applications', trainable
# count = torchvision's)
PARAMETER_COUNTS = [
    ("resnet50", "v1", 25_636_712, None),
    ("resnet101", "v1", 44_707_176, None),
    ("resnet152", "v1", 60_419_944, None),
    ("resnet50", "v2", 25_613_800, None),
    ("resnet18", "v1.5", None, 11_689_512),
    ("resnet34", "v1.5", None, 21_797_672),
    ("resnet50", "v1.5", None, 25_557_032),
]


@pytest.mark.parametrize(
    "variant, version, total, trainable",
    PARAMETER_COUNTS,
    ids=[f"{row[0]}-{row[1]}" for row in PARAMETER_COUNTS],
)
def test_parameter_count(variant, version, total, trainable, shared_models):
    if variant == "resnet50":
        model = shared_models(variant, version)
    else:
        # Shapes only: drawing 60 M initial values costs more than the build.
        with structure_only():
            model = keras_cvlec.build_resnet(variant, version=version)
    assert model.name == f"{variant}_{version}"
    assert model.output_shape == (None, 1000)
    trainable_count = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    # Only the BN moving means and variances are non-trainable, and there are
    # two of them per BN scale.
    non_trainable = model.non_trainable_weights
    gammas = [w for w in model.trainable_weights if w.name == "gamma"]
    assert {w.name for w in non_trainable} == {"moving_mean", "moving_variance"}
    assert sum(int(np.prod(w.shape)) for w in non_trainable) == 2 * sum(
        int(np.prod(w.shape)) for w in gammas
    )
    # No stochastic depth by default: every block's rate is 0.
    blocks = [layer for layer in model.layers if "_block" in layer.name]
    assert len(blocks) == sum(RESNET_VARIANTS[variant]["stage_blocks"])
    assert {block.drop_path_rate for block in blocks} == {0.0}
    if total is not None:
        # keras.applications' count (tests/test_weights.py builds ResNet50,
        # ResNet50V2 and ResNet101 and checks it equals theirs).
        assert model.count_params() == total
    if trainable is not None:
        assert trainable_count == trainable
        # v1.5 (torchvision) has no convolution biases, only the classifier's.
        biases = [w.path for w in model.weights if w.name == "bias"]
        assert biases == ["predictions/bias"]


# --------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_stage_outputs_bottleneck(version, shared_models):
    """Strides 4, 8, 16, 32 and 4x expanded widths; 64x64 -> 16, 8, 4, 2."""
    model = shared_models("resnet50", version)
    features = _feature_model(model)
    assert [tuple(output.shape) for output in features.outputs] == [
        (None, None, None, 256),
        (None, None, None, 512),
        (None, None, None, 1024),
        (None, None, None, 2048),
    ]
    outputs = features(_random_images((2, 64, 64, 3)), training=False)
    expected = [
        (2, 64 // stride, 64 // stride, width * 4)
        for stride, width in zip((4, 8, 16, 32), STAGE_WIDTHS)
    ]
    assert expected == [(2, 16, 16, 256), (2, 8, 8, 512), (2, 4, 4, 1024), (2, 2, 2, 2048)]
    assert [tuple(output.shape) for output in outputs] == expected


@pytest.mark.parametrize("version", VERSIONS)
def test_one_model_takes_several_input_sizes(version, shared_models):
    """(None, None, 3) input: 32x32, odd 33x47 and 64x40 through one model."""
    model = shared_models("resnet18", version)
    assert model.input_shape == (None, None, None, 3)
    features = _feature_model(model, extra=("predictions",))
    assert [tuple(out.shape) for out in features.outputs] == [
        (None, None, None, width) for width in STAGE_WIDTHS
    ] + [(None, 7)]
    batch = 2  # the same batch as other tests: JAX reuses its compiled ops
    for height, width in ((32, 32), (33, 47), (64, 40)):
        outputs = features(_random_images((batch, height, width, 3)), training=False)
        expected = [
            (batch, h, w, channels)
            for h, w, channels in zip(
                _expected_stage_sizes(height),
                _expected_stage_sizes(width),
                STAGE_WIDTHS,
            )
        ]
        assert [tuple(out.shape) for out in outputs[:4]] == expected
        assert tuple(outputs[4].shape) == (batch, 7)
        assert np.all(np.isfinite(harness.to_numpy(outputs[4])))
    # 33x47 by hand: stem 17x24, pool 9x12, then 5x6, 3x3, 2x2.
    assert list(zip(_expected_stage_sizes(33), _expected_stage_sizes(47))) == [
        (9, 12),
        (5, 6),
        (3, 3),
        (2, 2),
    ]


def test_odd_static_input_shape():
    model = keras_cvlec.build_resnet(
        "resnet18", version="v1.5", include_top=False, input_shape=(33, 47, 3)
    )
    features = _feature_model(model)
    expected = [(9, 12, 64), (5, 6, 128), (3, 3, 256), (2, 2, 512)]
    assert model.output_shape == (None, 2, 2, 512)  # pooling=None: the map
    assert [tuple(out.shape) for out in features.outputs] == [(None,) + shape for shape in expected]
    outputs = features(_random_images((2, 33, 47, 3)), training=False)
    assert [tuple(out.shape) for out in outputs] == [(2,) + s for s in expected]


@pytest.mark.parametrize(
    "input_shape, images_shape",
    [((32, 32, 1), (2, 32, 32, 1)), ((None, None, 4), (2, 33, 47, 4))],
    ids=["1-channel", "4-channel"],
)
def test_any_channel_count(input_shape, images_shape):
    model = keras_cvlec.build_resnet(
        "resnet18", version="v1.5", num_classes=4, input_shape=input_shape
    )
    channels = input_shape[-1]
    assert model.input_shape == (None,) + input_shape
    assert tuple(model.get_layer("stem_conv").kernel.shape) == (7, 7, channels, 64)
    # torchvision's 11,689,512 less the 1000-class classifier plus a 4-class
    # one, and 7*7*64 stem weights per channel more or less than 3.
    expected = 11_689_512 - 513 * 1000 + 513 * 4 + 7 * 7 * 64 * (channels - 3)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == expected
    output = harness.to_numpy(model(_random_images(images_shape), training=False))
    assert output.shape == (2, 4)
    np.testing.assert_allclose(output.sum(axis=-1), 1.0, atol=1e-5)


def _basic_resnet_trainable_count(filters, stage_blocks, channels, num_classes):
    """Trainable parameters of a v1.5 basic-block ResNet, counted by hand:
    bias-free convolutions, two BN parameters per channel, a 1x1 projection
    shortcut where the width or stride changes, a Dense classifier."""
    count = 7 * 7 * channels * filters + 2 * filters
    width = filters
    for stage, blocks in enumerate(stage_blocks):
        out = filters * 2**stage
        for _ in range(blocks):
            count += 9 * width * out + 2 * out + 9 * out * out + 2 * out
            if width != out:
                count += width * out + 2 * out
            width = out
    return count + width * num_classes + num_classes


def test_filters_scale_every_stage():
    # The hand count reproduces torchvision's ResNet-18 and -34 at 64 filters.
    assert _basic_resnet_trainable_count(64, (2, 2, 2, 2), 3, 1000) == 11_689_512
    assert _basic_resnet_trainable_count(64, (3, 4, 6, 3), 3, 1000) == 21_797_672
    model = keras_cvlec.build_resnet(
        "resnet18", version="v1.5", num_classes=3, input_shape=(32, 32, 3), filters=16
    )
    assert tuple(model.get_layer("stem_conv").kernel.shape) == (7, 7, 3, 16)
    assert [model.get_layer(f"stage{k}_output").output.shape[-1] for k in (1, 2, 3, 4)] == [
        16,
        32,
        64,
        128,
    ]
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == (
        _basic_resnet_trainable_count(16, (2, 2, 2, 2), 3, 3)
    )
    with structure_only():
        bottleneck = keras_cvlec.build_resnet(
            "resnet50", num_classes=3, input_shape=(32, 32, 3), filters=8
        )
    # A bottleneck expands its width 4x: the last stage ends at 8 * 8 * 4.
    assert bottleneck.get_layer("stage4_output").output.shape[-1] == 256
    output = harness.to_numpy(model(_random_images((2, 32, 32, 3)), training=False))
    assert output.shape == (2, 3)


@pytest.mark.parametrize("version", VERSIONS)
def test_channels_first_matches_channels_last(version, shared_models):
    last = shared_models("resnet18", version)
    first = keras_cvlec.build_resnet(
        "resnet18",
        version=version,
        num_classes=7,
        classifier_activation=None,
        data_format="channels_first",
    )
    # The default (None, None, 3) means 3 channels in either order.
    assert first.input_shape == (None, 3, None, None)
    assert [tuple(w.shape) for w in first.weights] == [tuple(w.shape) for w in last.weights]
    first.set_weights(last.get_weights())
    # Width 128: the stem's output is 64 wide with 64 channels, where a bias
    # add that guesses the layout from the shape goes wrong (see keras_cvlec/layers/convolution.py).
    images = _random_images((2, 33, 128, 3), seed=2)
    out_last = _feature_model(last, extra=("predictions",))(images, training=False)
    out_first = _feature_model(first, extra=("predictions",))(
        np.transpose(images, (0, 3, 1, 2)), training=False
    )
    for level, (a, b) in enumerate(zip(out_last[:4], out_first[:4]), start=1):
        b = np.transpose(harness.to_numpy(b), (0, 2, 3, 1))
        assert b.shape == tuple(a.shape), f"stage{level}"
        harness.assert_allclose(b, a, atol=1e-4, rtol=1e-4, msg=f"stage{level}")
    logits = harness.to_numpy(out_last[4])
    assert logits.std() > 1e-2  # a meaningful comparison, not zeros
    harness.assert_allclose(out_first[4], logits, atol=1e-4, rtol=1e-4)


def _torch_v15_reference(model, images, stage_blocks, bottleneck):
    """torchvision's ResNet (v1.5) forward pass written with
    torch.nn.functional, reading `model`'s weights by path; returns the
    globally pooled features and the logits."""
    import torch
    import torch.nn.functional as F

    weights = {
        w.path: torch.from_numpy(np.array(harness.to_numpy(w), dtype="float32"))
        for w in model.weights
    }

    def conv(x, name, stride, padding):
        kernel = weights.pop(f"{name}/kernel").permute(3, 2, 0, 1)  # OIHW
        return F.conv2d(x, kernel, weights.pop(f"{name}/bias", None), stride, padding)

    def bn(x, name):
        return F.batch_norm(
            x,
            weights.pop(f"{name}/moving_mean"),
            weights.pop(f"{name}/moving_variance"),
            weights.pop(f"{name}/gamma"),
            weights.pop(f"{name}/beta"),
            training=False,
            eps=1e-5,
        )

    kernel_sizes = (1, 3, 1) if bottleneck else (3, 3)
    expansion = 4 if bottleneck else 1
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2)
        x = F.relu(bn(conv(x, "stem_conv", 2, 3), "stem_bn"))
        x = F.max_pool2d(x, 3, 2, 1)
        channels = 64
        for stage, (width, blocks) in enumerate(zip(STAGE_WIDTHS, stage_blocks), 1):
            for index in range(1, blocks + 1):
                name = f"stage{stage}_block{index}"
                stride = 2 if stage > 1 and index == 1 else 1
                out = x
                for number, kernel_size in enumerate(kernel_sizes, start=1):
                    last = number == len(kernel_sizes)
                    strided = number == kernel_sizes.index(3) + 1  # first 3x3
                    out = conv(
                        out,
                        f"{name}/conv{number}",
                        stride if strided else 1,
                        kernel_size // 2,
                    )
                    out = bn(out, f"{name}/bn{number}")
                    out = out if last else F.relu(out)
                if stride != 1 or channels != width * expansion:
                    shortcut = bn(
                        conv(x, f"{name}/shortcut_conv", stride, 0), f"{name}/shortcut_bn"
                    )
                else:
                    shortcut = x
                x = F.relu(out + shortcut)
                channels = width * expansion
        pooled = x.mean(dim=(2, 3))
        logits = F.linear(
            pooled, weights.pop("predictions/kernel").T, weights.pop("predictions/bias")
        )
    assert weights == {}, f"weights the reference did not use: {sorted(weights)}"
    return pooled.numpy(), logits.numpy()


@pytest.mark.parametrize("variant", ["resnet18", "resnet50"])
def test_v15_matches_torch_functional_reference(variant, shared_models):
    """v1.5 is torchvision's ResNet: the same logits as a torch.nn.functional
    re-implementation (symmetric padding of strided convs, stride on the 3x3
    convolution, BN epsilon 1e-5)."""
    model = shared_models(variant, "v1.5")
    if variant == "resnet50":  # the default model: randomise its weights
        harness.randomize_weights(model, seed=12)
    images = _random_images((2, 33, 47, 3), seed=13)
    pooled, logits = _torch_v15_reference(
        model,
        images,
        RESNET_VARIANTS[variant]["stage_blocks"],
        bottleneck=variant == "resnet50",
    )
    assert logits.std() > 1e-2
    outputs = keras.Model(model.input, [model.get_layer("avg_pool").output, model.output])(
        images, training=False
    )
    harness.assert_allclose(outputs[0], pooled, atol=1e-4, rtol=1e-4)
    if variant == "resnet50":  # the default classifier_activation="softmax"
        logits = _softmax(logits)
    harness.assert_allclose(outputs[1], logits, atol=1e-4, rtol=1e-4)


def test_data_format_defaults_to_keras_config_and_name():
    keras.config.set_image_data_format("channels_first")
    try:
        model = keras_cvlec.build_resnet(
            "resnet18", include_top=False, input_shape=(3, 32, 32), name="backbone"
        )
    finally:
        keras.config.set_image_data_format("channels_last")
    assert model.name == "backbone"
    assert model.get_layer("stem_conv").data_format == "channels_first"
    assert model.get_layer("stage2_block1").data_format == "channels_first"
    assert model.output_shape == (None, 512, 1, 1)


def test_head_pooling_and_classifier_activation(shared_models):
    """Logits (classifier_activation=None) and headless avg/max pooling share
    one set of weights, checked against NumPy from the stage-4 features."""
    logits_model = shared_models("resnet18", "v1")
    assert logits_model.get_layer("predictions").activation is (keras.activations.linear)
    headless = {
        pooling: keras_cvlec.build_resnet("resnet18", include_top=False, pooling=pooling)
        for pooling in ("avg", "max")
    }
    weights = logits_model.get_weights()
    kernel, bias = weights[-2], weights[-1]
    assert kernel.shape == (512, 7) and bias.shape == (7,)
    for model in headless.values():
        assert logits_model.count_params() - model.count_params() == 512 * 7 + 7
        model.set_weights(weights[:-2])

    images = _random_images((2, 64, 96, 3), seed=4)
    features, logits = _feature_model(logits_model, extra=("predictions",))(images, training=False)[
        3:
    ]
    features, logits = harness.to_numpy(features), harness.to_numpy(logits)
    assert features.shape == (2, 2, 3, 512)
    avg = harness.to_numpy(headless["avg"](images, training=False))
    maximum = harness.to_numpy(headless["max"](images, training=False))
    assert avg.shape == maximum.shape == (2, 512)
    harness.assert_allclose(avg, features.mean(axis=(1, 2)), atol=1e-5, rtol=1e-5)
    harness.assert_allclose(maximum, features.max(axis=(1, 2)), atol=1e-6, rtol=1e-6)
    assert np.abs(avg - maximum).max() > 1e-2  # the two poolings differ here

    assert logits.shape == (2, 7)
    expected_logits = features.mean(axis=(1, 2)) @ kernel + bias
    harness.assert_allclose(logits, expected_logits, atol=1e-4, rtol=1e-4)
    assert np.abs(logits.sum(axis=-1) - 1.0).max() > 1e-2  # not probabilities
    # The default classifier_activation="softmax": see test_registry.


def test_layer_names(shared_models):
    model = shared_models("resnet18", "v2")
    assert model.name == "resnet18_v2"
    blocks = [layer.name for layer in model.layers if "_block" in layer.name]
    assert blocks == [f"stage{s}_block{b}" for s in range(1, 5) for b in range(1, 3)]
    names = [layer.name for layer in model.layers]
    for name in ("stem_conv", "post_bn", "avg_pool", "predictions") + STAGE_NAMES:
        assert name in names
    assert "stem_bn" not in names  # v2: no norm in the stem


# --------------------------------------------------------------------------
# Stochastic depth
# --------------------------------------------------------------------------


def test_drop_path_rate_grows_linearly(shared_models):
    model = shared_models("resnet18", "v1")  # drop_path_rate=0.2
    blocks = [layer for layer in model.layers if "_block" in layer.name]
    assert len(blocks) == 8
    expected = [0.2 * index / 7 for index in range(8)]
    np.testing.assert_allclose([b.drop_path_rate for b in blocks], expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose([b.drop_path.rate for b in blocks], expected, rtol=1e-12, atol=0)
    assert blocks[0].drop_path_rate == 0.0 and blocks[-1].drop_path_rate == 0.2


def test_drop_path_random_in_training_deterministic_in_inference(shared_models):
    model = shared_models("resnet18", "v1.5")  # drop_path_rate=0.2
    plain = keras_cvlec.build_resnet(
        "resnet18",
        version="v1.5",
        num_classes=7,
        classifier_activation=None,
    )
    plain.set_weights(model.get_weights())
    images = _random_images((8, 32, 32, 3), seed=6)
    first = harness.to_numpy(model(images, training=False))
    harness.assert_allclose(model(images, training=False), first, atol=0, rtol=0)
    harness.assert_allclose(model(images), first, atol=0, rtol=0)
    # At inference the model equals the same weights without stochastic depth.
    harness.assert_allclose(plain(images, training=False), first, atol=1e-5, rtol=1e-5)
    # In training whole samples' branches are dropped at random: two calls
    # differ (BN uses the same batch statistics in both calls), and a model
    # without stochastic depth is deterministic in training too.
    weights = model.get_weights()  # training=True updates the BN statistics
    train_a = harness.to_numpy(model(images, training=True))
    train_b = harness.to_numpy(model(images, training=True))
    model.set_weights(weights)
    assert np.abs(train_a - train_b).max() > 1e-3
    plain_a = harness.to_numpy(plain(images, training=True))
    harness.assert_allclose(plain(images, training=True), plain_a, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------
# Weights from a file
# --------------------------------------------------------------------------


def test_weights_from_file(tmp_path, shared_models):
    source = shared_models("resnet18", "v1.5")
    path = tmp_path / "resnet18.weights.h5"
    source.save_weights(str(path))
    images = _random_images((2, 32, 32, 3), seed=10)
    expected = harness.to_numpy(source(images, training=False))
    for weights in (str(path), path):  # a str and an os.PathLike
        model = keras_cvlec.build_resnet(
            "resnet18",
            version="v1.5",
            num_classes=7,
            classifier_activation=None,
            weights=weights,
        )
        for a, b in zip(model.weights, source.weights):
            assert a.path == b.path
            harness.assert_allclose(a, b, atol=0, rtol=0, msg=a.path)
        harness.assert_allclose(model(images, training=False), expected, atol=0, rtol=0)


# --------------------------------------------------------------------------
# Bad arguments
# --------------------------------------------------------------------------

BAD_ARGUMENTS = [
    (
        dict(variant="resnet20"),
        ValueError,
        r"variant.*'resnet20'.*'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152'",
    ),
    (
        dict(variant=["resnet50"]),
        ValueError,
        r"variant.*\['resnet50'\].*'resnet18', 'resnet34', 'resnet50', 'resnet101'",
    ),
    (dict(version="v3"), ValueError, r"version.*'v3'.*'v1', 'v1.5', 'v2'"),
    (dict(input_shape=(16, 16, 3)), ValueError, r"at least 32.*input_shape=\(16, 16, 3\)"),
    (dict(input_shape=(64, 31, 3)), ValueError, r"input_shape=\(64, 31, 3\)"),
    (dict(input_shape=(64, 64)), ValueError, r"input_shape=\(64, 64\)"),
    (dict(input_shape=(64, 64, 0)), ValueError, r"channel.*input_shape=\(64, 64, 0\)"),
    (dict(num_classes=0), ValueError, r"num_classes.*>= 1.*num_classes=0"),
    (dict(num_classes=2.5), TypeError, r"num_classes=2.5"),
    (dict(num_classes=10, weights="imagenet"), ValueError, r"num_classes=1000.*num_classes=10"),
    (dict(include_top=False, pooling="sum"), ValueError, r"pooling.*'sum'.*None, 'avg', 'max'"),
    (dict(drop_path_rate=-0.1), ValueError, r"drop_path_rate.*\[0, 1\).*-0\.1"),
    (dict(drop_path_rate=1.0), ValueError, r"drop_path_rate.*\[0, 1\).*1\.0"),
    (dict(drop_path_rate="0.1"), TypeError, r"drop_path_rate='0.1'"),
    (dict(weights="foo"), ValueError, r"weights=.*'foo'"),
    (
        dict(weights="/nonexistent/dir/resnet.weights.h5"),
        ValueError,
        r"not found.*/nonexistent/dir/resnet\.weights\.h5",
    ),
    (
        dict(variant="resnet18", weights="imagenet"),
        ValueError,
        r"ImageNet.*variant='resnet18'.*Available: resnet50 v1, resnet50 v2",
    ),
    (dict(version="v1.5", weights="imagenet"), ValueError, r"ImageNet.*version='v1\.5'"),
    (
        dict(weights="imagenet", input_shape=(64, 64, 1)),
        ValueError,
        r"3 input channels.*input_shape=\(64, 64, 1\)",
    ),
    (dict(include_top="yes"), TypeError, r"include_top.*'yes'"),
    (dict(filters=0), ValueError, r"filters.*>= 1.*filters=0"),
    (dict(filters=16.0), TypeError, r"filters=16.0"),
    (
        dict(filters=32, weights="imagenet"),
        ValueError,
        r"weights='imagenet'.*filters=64.*filters=32",
    ),
    (dict(data_format="NHWC"), ValueError, r"data_format.*'NHWC'"),
]


@pytest.mark.parametrize(
    "kwargs, error, match",
    BAD_ARGUMENTS,
    ids=[",".join(f"{k}={v!r}" for k, v in row[0].items()) for row in BAD_ARGUMENTS],
)
def test_bad_arguments(kwargs, error, match, monkeypatch):
    # Every check runs before keras.applications is asked for weights.
    def no_download(*args, **kwargs):
        raise AssertionError("keras.applications must not be called")

    for name in ("ResNet50", "ResNet50V2", "ResNet101", "ResNet152"):
        monkeypatch.setattr(keras.applications, name, no_download)
    kwargs = {"variant": "resnet50", **kwargs}
    with pytest.raises(error, match=match):
        keras_cvlec.build_resnet(kwargs.pop("variant"), **kwargs)


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------


def test_registry_and_softmax(shared_models):
    names = keras_cvlec.list_models()
    assert names == sorted(names)
    for variant in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        assert variant in names
    model = keras_cvlec.build_model("resnet18", input_shape=(32, 32, 3), num_classes=7)
    assert model.name == "resnet18_v1"
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 7)
    # The default classifier_activation is softmax: the probabilities of the
    # shared ResNet-18 v1's logits, with the same weights.
    assert model.get_layer("predictions").activation is keras.activations.softmax
    logits_model = shared_models("resnet18", "v1")
    assert model.count_params() == logits_model.count_params()
    model.set_weights(logits_model.get_weights())
    images = _random_images((2, 32, 32, 3), seed=11)
    logits = harness.to_numpy(logits_model(images, training=False))
    probabilities = harness.to_numpy(model(images, training=False))
    assert probabilities.shape == (2, 7)
    assert probabilities.min() >= 0.0
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    harness.assert_allclose(probabilities, _softmax(logits), atol=1e-5, rtol=1e-4)
    assert np.abs(probabilities - logits).max() > 1e-2
    with pytest.raises(ValueError, match=r"Unknown model name: 'resnet19'") as info:
        keras_cvlec.build_model("resnet19")
    for name in names:
        assert name in str(info.value)


# --------------------------------------------------------------------------
# Training (last: it changes the shared models' weights)
# --------------------------------------------------------------------------


def test_fit_one_step_under_xla_with_drop_path(shared_models):
    """One SGD step of ResNet-18 v1 with drop_path_rate=0.2, `jit_compile=True`
    on TF/JAX ("auto" on torch), then deterministic inference. One version:
    XLA compiles the whole model for tens of seconds on TF, and every block
    version trains under XLA in tests/layers/test_resnet_blocks.py."""
    model = shared_models("resnet18", "v1")
    assert model.get_layer("stage4_block2").drop_path_rate == 0.2
    images = _random_images((4, 32, 32, 3), seed=7)
    targets = np.random.default_rng(8).normal(size=(4, 7)).astype("float32")
    before = [harness.to_numpy(w).copy() for w in model.weights]
    harness.fit_one_step(model, images, targets)
    if harness.backend_name() != "torch":
        assert model.jit_compile is True
    changed = _weights_changed(before, model)
    # Every kernel, BN scale and offset and the classifier move; the BN
    # moving statistics are updated. (v1 convolution biases before a BN get
    # a zero gradient, so biases are not required to move.)
    must_change = {
        w.path
        for w in model.weights
        if w.name in ("kernel", "gamma", "beta", "moving_mean", "moving_variance")
    } | {"predictions/bias"}
    assert len(must_change) > 80
    assert must_change - changed == set()
    output = harness.to_numpy(model(images, training=False))
    assert output.shape == (4, 7) and np.all(np.isfinite(output))
    harness.assert_allclose(model(images, training=False), output, atol=0, rtol=0)
