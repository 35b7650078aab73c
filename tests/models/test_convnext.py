"""`keras_cvlec.build_convnext`, its registry entries and the weight transfer
from keras.applications ConvNeXt.

References: parameter counts of keras.applications `ConvNeXtTiny` ...
`ConvNeXtXLarge` (REFERENCES.md) and of timm's `convnext_atto` ...
`convnext_nano` (3.70 M, 5.22 M, 9.05 M, 15.59 M: the `param_count` column
of timm's `results/results-imagenet.csv` for `convnext_atto.d2_in1k`,
`convnext_femto.d1_in1k`, `convnext_pico.d1_in1k`, `convnext_nano.d1h_in1k`;
timm's blocks have the same parameters as these); output sizes from the convolution formula
`floor((n - k) / s) + 1`; keras.applications `ConvNeXtTiny` built here with
`weights=None` and random weights for the transfer; channels_first against
channels_last with the same weights.

Cost: the tiny model and a keras.applications ConvNeXtTiny are built once per
process (module fixtures). The other parameter counts use the real builder
inside `keras.StatelessScope(initialize_variables=False)`, which creates the
variables' shapes without drawing their values: drawing 350 M initial values
for ConvNeXt-XLarge took 20-40 s on the TensorFlow CPU backend here, the
symbolic build about 1 s. Everything else runs ConvNeXt-atto at 32-70 pixels.
"""

import keras
import numpy as np
import pytest

import keras_cvlec
from keras_cvlec.layers import ConvNeXtBlock, StochasticDepth
from keras_cvlec.models.convnext import (
    CONVNEXT_DROP_PATH_RATES,
    CONVNEXT_VARIANTS,
    IMAGENET_MEAN,
    IMAGENET_STD,
)
from keras_cvlec.training.recipes import recipe_for
from keras_cvlec.utils import structure_only
from tests import harness

STAGE_NAMES = tuple(f"stage{level}_output" for level in range(1, 5))
TRANSFER_SIZE = 64

KERAS_APPLICATIONS_COUNTS = {
    "tiny": 28_589_128,
    "small": 50_223_688,
    "base": 88_591_464,
    "large": 197_767_336,
    "xlarge": 350_196_968,
}
# timm's param_count (millions, two decimals) of convnext_atto ... nano.
TIMM_COUNTS_MILLIONS = {"atto": 3.70, "femto": 5.22, "pico": 9.05, "nano": 15.59}


def _random_images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _forward(model, images):
    """The model's inference output as NumPy. On JAX through one jitted
    predict step: it compiles the whole graph once, about 2.5x faster here
    than eager dispatch, which compiles every op for every new shape."""
    if harness.backend_name() == "jax":
        return model.predict_on_batch(images)
    return harness.to_numpy(model(images, training=False))


def _randomize_weights(model, seed=0):
    """Every weight random: kernels N(0, 1/fan_in), every 1-D weight (norm
    scales and shifts, biases, layer scales) uniform in [0.5, 1.5], so each
    one changes the output and activations stay of order one."""
    rng = np.random.default_rng(seed)
    values = []
    for weight in model.weights:
        shape = tuple(weight.shape)
        if len(shape) >= 2:
            fan_in = int(np.prod(shape[:-1]))
            values.append(rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape))
        else:
            values.append(rng.uniform(0.5, 1.5, shape))
    model.set_weights([value.astype("float32") for value in values])


def _stage_sizes(size):
    """Spatial sizes of stages 1..4 for one input side: the 4x4/4 stem and
    three 2x2/2 downsamplings, `floor((n - k) / s) + 1` each."""
    sizes = [(size - 4) // 4 + 1]
    for _ in range(3):
        sizes.append((sizes[-1] - 2) // 2 + 1)
    return sizes


def _blocks(model):
    return [layer for layer in model.layers if isinstance(layer, ConvNeXtBlock)]


@pytest.fixture(scope="module")
def tiny_model():
    """ConvNeXt-T with logits, any input size, built once per process."""
    keras.utils.set_random_seed(0)
    return keras_cvlec.build_convnext(
        "tiny", input_shape=(None, None, 3), classifier_activation=None
    )


@pytest.fixture(scope="module")
def tiny_source():
    """keras.applications ConvNeXtTiny (its input `Normalization` included),
    with every weight random, built once per process."""
    keras.utils.set_random_seed(0)
    source = keras.applications.ConvNeXtTiny(
        weights=None,
        input_shape=(TRANSFER_SIZE, TRANSFER_SIZE, 3),
        classifier_activation=None,
    )
    _randomize_weights(source, seed=1)
    return source


# --------------------------------------------------------------------------
# Architecture
# --------------------------------------------------------------------------


def test_tiny_parameter_count(tiny_model):
    assert tiny_model.count_params() == KERAS_APPLICATIONS_COUNTS["tiny"]
    assert len(_blocks(tiny_model)) == 3 + 3 + 9 + 3


def test_parameter_counts_of_every_variant():
    counts = {}
    with structure_only():
        for variant in CONVNEXT_VARIANTS:
            if variant == "tiny":
                continue  # built for real by the fixture
            model = keras_cvlec.build_convnext(variant, input_shape=(32, 32, 3))
            counts[variant] = model.count_params()
            spec = CONVNEXT_VARIANTS[variant]
            assert len(_blocks(model)) == sum(spec.depths)
            assert model.get_layer("stage4_output").output.shape[-1] == 8 * spec.width
    for variant, expected in KERAS_APPLICATIONS_COUNTS.items():
        if variant != "tiny":
            assert counts[variant] == expected, variant
    for variant, millions in TIMM_COUNTS_MILLIONS.items():
        assert round(counts[variant] / 1e6, 2) == millions, (variant, counts[variant])


# The paper's ImageNet-1K drop-path rates (Liu et al. 2022, Table 5; the
# official TRAINING.md); xlarge is trained only on ImageNet-22K there.
PAPER_DROP_PATH_RATES = {"tiny": 0.1, "small": 0.4, "base": 0.5, "large": 0.5}


def test_variant_table_and_recipe_drop_path_rates():
    assert CONVNEXT_DROP_PATH_RATES == PAPER_DROP_PATH_RATES
    for variant, row in CONVNEXT_VARIANTS.items():
        # The recipe reads the model table; variants without a published rate
        # train without drop path.
        expected = PAPER_DROP_PATH_RATES.get(variant, 0.0)
        assert row.drop_path_rate == PAPER_DROP_PATH_RATES.get(variant), variant
        assert recipe_for(f"convnext_{variant}").drop_path_rate == expected, variant
    assert {v: (row.depths, row.width) for v, row in CONVNEXT_VARIANTS.items()} == {
        "atto": ((2, 2, 6, 2), 40),
        "femto": ((2, 2, 6, 2), 48),
        "pico": ((2, 2, 6, 2), 64),
        "nano": ((2, 2, 8, 2), 80),
        "tiny": ((3, 3, 9, 3), 96),
        "small": ((3, 3, 27, 3), 96),
        "base": ((3, 3, 27, 3), 128),
        "large": ((3, 3, 27, 3), 192),
        "xlarge": ((3, 3, 27, 3), 256),
    }


def test_layer_names_and_heads():
    with structure_only():
        model = keras_cvlec.build_convnext("atto", num_classes=7, input_shape=(64, 96, 3))
        names = [layer.name for layer in model.layers]
        expected_order = [
            "image",
            "stem_conv",
            "stem_norm",
            "stage1_block1",
            "stage1_block2",
            "stage1_output",
            "stage2_downsample_norm",
            "stage2_downsample_conv",
            "stage2_block1",
        ]
        assert names[: len(expected_order)] == expected_order
        assert names[-6:] == [
            "stage4_block1",
            "stage4_block2",
            "stage4_output",
            "avg_pool",
            "head_norm",
            "predictions",
        ]
        assert model.name == "convnext_atto"
        assert model.output_shape == (None, 7)
        headless = keras_cvlec.build_convnext(
            "atto", include_top=False, input_shape=(64, 96, 3), name="backbone"
        )
        assert headless.name == "backbone"
        assert headless.output_shape == (None, 2, 3, 320)
        assert "head_norm" not in [layer.name for layer in headless.layers]
        for pooling in ("avg", "max"):
            pooled = keras_cvlec.build_convnext(
                "atto", include_top=False, pooling=pooling, input_shape=(64, 96, 3)
            )
            assert pooled.output_shape == (None, 320)
            assert pooled.layers[-1].name == f"{pooling}_pool"
        # Top and headless models share their weights' shapes (minus the top).
        top_shapes = [tuple(w.shape) for w in model.weights]
        assert [tuple(w.shape) for w in headless.weights] == top_shapes[:-4]
        assert top_shapes[-4:] == [(320,), (320,), (320, 7), (7,)]


def test_stage_outputs_at_several_sizes():
    """One (None, None, 3) model, several sizes, sizes not divisible by 32."""
    model = keras_cvlec.build_convnext("atto", include_top=False)
    features = keras.Model(model.input, [model.get_layer(name).output for name in STAGE_NAMES])
    for height, width in [(32, 32), (70, 45)]:
        outputs = _forward(features, _random_images((2, height, width, 3)))
        got = [tuple(output.shape) for output in outputs]
        expected = [
            (2, h, w, 40 * 2**level)
            for level, (h, w) in enumerate(zip(_stage_sizes(height), _stage_sizes(width)))
        ]
        assert got == expected
    # Strides 4, 8, 16, 32 at a multiple of 32.
    assert _stage_sizes(96) == [96 // 4, 96 // 8, 96 // 16, 96 // 32]


def test_any_size_model_called_on_too_small_images():
    """A (None, None, 3) model cannot check the minimum size when built: a
    16x16 image reaches the last downsampling at 1x1, which says so, in an
    eager call and in compiled `predict`."""
    model = keras_cvlec.build_convnext("atto", num_classes=3, input_shape=(None, None, 3))
    assert tuple(model(_random_images((2, 32, 32, 3))).shape) == (2, 3)
    match = r"'stage4_downsample_conv' received an input of spatial size 1x1, smaller than its 2x2 kernel"
    with pytest.raises(ValueError, match=match):
        model(_random_images((2, 16, 16, 3)))
    with pytest.raises(ValueError, match=match):
        model.predict(_random_images((2, 16, 16, 3)), verbose=0)


def test_channels_first_equals_channels_last():
    # Width 160: the stem gives 12x40 maps with 40 channels, where Keras's own
    # Conv2D/DepthwiseConv2D add the bias along the width on TensorFlow.
    kwargs = dict(num_classes=5, classifier_activation=None)
    last = keras_cvlec.build_convnext(
        "atto", input_shape=(48, 160, 3), data_format="channels_last", **kwargs
    )
    first = keras_cvlec.build_convnext(
        "atto", input_shape=(3, 48, 160), data_format="channels_first", **kwargs
    )
    assert [tuple(w.shape) for w in first.weights] == [tuple(w.shape) for w in last.weights]
    _randomize_weights(last, seed=2)
    first.set_weights(last.get_weights())
    images = _random_images((2, 48, 160, 3), seed=3)
    expected = _forward(last, images)
    got = _forward(first, np.transpose(images, (0, 3, 1, 2)))
    assert np.max(np.abs(expected)) > 0.1
    harness.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    stage = first.get_layer("stage2_output").output
    assert tuple(stage.shape) == (None, 80, 6, 20)


def test_default_channels_first_input_shape():
    with structure_only():
        keras.config.set_image_data_format("channels_first")
        model = keras_cvlec.build_convnext("atto", include_top=False)
        assert model.input_shape == (None, 3, None, None)
        assert model.output_shape == (None, 320, None, None)


def test_drop_path_rates_grow_linearly():
    with structure_only():
        model = keras_cvlec.build_convnext("atto", drop_path_rate=0.3, input_shape=(32, 32, 3))
        blocks = _blocks(model)
        names = [block.name for block in blocks]
        rates = [block.drop_path_rate for block in blocks]
        inner = [block.drop_path.rate for block in blocks]
    assert names[:3] == ["stage1_block1", "stage1_block2", "stage2_block1"]
    # 12 blocks: 0, 0.3/11, ..., 0.3.
    np.testing.assert_allclose(rates, [0.3 * i / 11 for i in range(12)], atol=1e-12)
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3)
    assert inner == rates
    assert all(isinstance(block.drop_path, StochasticDepth) for block in blocks)


def test_layer_scale_gelu_and_options_reach_blocks():
    with structure_only():
        model = keras_cvlec.build_convnext(
            "atto",
            layer_scale_init_value=None,
            gelu_approximate=True,
            input_shape=(32, 32, 3),
        )
        blocks = _blocks(model)
        assert all(block.layer_scale is None for block in blocks)
        assert all(block.gelu_approximate for block in blocks)
        # Without layer scale: 40 + 80 + 160 + 320 channels x blocks fewer.
        scaled = keras_cvlec.build_convnext("atto", input_shape=(32, 32, 3))
        assert scaled.count_params() - model.count_params() == (2 * 40 + 2 * 80 + 6 * 160 + 2 * 320)


def test_fit_one_step():
    keras.utils.set_random_seed(4)
    # Layer scale 0.1, not 1e-6: with 1e-6 the updates of the blocks' norm
    # scales (about 1e-9) vanish in float32 next to their value 1.
    model = keras_cvlec.build_convnext(
        "atto",
        num_classes=3,
        input_shape=(32, 32, 3),
        drop_path_rate=0.1,
        layer_scale_init_value=0.1,
    )
    before = [harness.to_numpy(w).copy() for w in model.trainable_weights]
    images = _random_images((4, 32, 32, 3), seed=5)
    labels = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    harness.fit_one_step(model, images, labels, loss="categorical_crossentropy", jit_compile="auto")
    changed = [
        w.path
        for w, old in zip(model.trainable_weights, before)
        if not np.array_equal(harness.to_numpy(w), old)
    ]
    # SGD moves every weight, from the stem to the classifier.
    unchanged = [w.path for w in model.trainable_weights if w.path not in changed]
    assert len(changed) == len(before), unchanged


def test_save_and_load(tmp_path):
    model = keras_cvlec.build_convnext(
        "atto",
        num_classes=3,
        input_shape=(32, 32, 3),
        drop_path_rate=0.1,
        layer_scale_init_value=0.5,
    )
    images = _random_images((2, 32, 32, 3), seed=6)
    path = str(tmp_path / "atto.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("stage3_block4"), ConvNeXtBlock)
    assert loaded.get_layer("stage3_block4").drop_path_rate == pytest.approx(0.1 * 7 / 11)
    harness.assert_allclose(_forward(loaded, images), _forward(model, images), atol=1e-6, rtol=1e-6)
    # ... and a weights file, through `weights=` (a pathlib.Path here).
    weights_path = tmp_path / "atto.weights.h5"
    model.save_weights(str(weights_path))
    again = keras_cvlec.build_convnext(
        "atto", num_classes=3, input_shape=(32, 32, 3), weights=weights_path
    )
    for a, b in zip(again.weights, model.weights):
        harness.assert_allclose(a, b, atol=0, rtol=0, msg=a.path)


# --------------------------------------------------------------------------
# Weight transfer from keras.applications
# --------------------------------------------------------------------------


def _imagenet_normalize(pixels):
    return (pixels / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)


def test_transfer_from_keras_applications(tiny_model, tiny_source):
    keras_cvlec.weights.from_keras_applications(tiny_model, tiny_source)
    pixels = (
        np.random.default_rng(7)
        .uniform(0, 255, (2, TRANSFER_SIZE, TRANSFER_SIZE, 3))
        .astype("float32")
    )
    # The source normalises [0, 255] pixels itself; keras_cvlec expects the
    # normalised images (documented in build_convnext).
    expected = _forward(tiny_source, pixels)
    got = _forward(tiny_model, _imagenet_normalize(pixels).astype("float32"))
    assert got.shape == (2, 1000)
    assert np.std(expected) > 0.1  # a meaningful comparison
    assert np.max(np.abs(got - expected)) <= 1e-4


def test_transfer_converts_depthwise_kernels(tiny_model, tiny_source):
    keras_cvlec.weights.from_keras_applications(tiny_model, tiny_source)
    source = tiny_source.get_layer("convnext_tiny_stage_2_block_8_depthwise_conv")
    target = tiny_model.get_layer("stage3_block9").depthwise_conv
    source_kernel = harness.to_numpy(source.kernel)
    assert source_kernel.shape == (7, 7, 1, 384)
    target_kernel = harness.to_numpy(target.kernel)
    assert target_kernel.shape == (7, 7, 384, 1)
    np.testing.assert_array_equal(target_kernel[:, :, :, 0], source_kernel[:, :, 0, :])
    scale = tiny_source.get_layer("convnext_tiny_stage_3_block_2_layer_scale")
    np.testing.assert_array_equal(
        harness.to_numpy(tiny_model.get_layer("stage4_block3").layer_scale.gamma),
        harness.to_numpy(scale.weights[0]),
    )


def test_transfer_mismatches(tiny_source):
    with structure_only():
        small = keras_cvlec.build_convnext("small", input_shape=(32, 32, 3))
        with pytest.raises(ValueError, match=r"no layer 'convnext_tiny_stage_2_block_9_"):
            keras_cvlec.weights.from_keras_applications(small, tiny_source)
        atto = keras_cvlec.build_convnext("atto", input_shape=(32, 32, 3))
        shapes = r"'stem_conv'.*\(4, 4, 3, 40\).*\(4, 4, 3, 96\)"
        with pytest.raises(ValueError, match=shapes):
            keras_cvlec.weights.from_keras_applications(atto, tiny_source)
        ten = keras_cvlec.build_convnext("tiny", num_classes=10, input_shape=(32, 32, 3))
        with pytest.raises(ValueError, match=r"'predictions'.*\(768, 10\).*\(768, 1000\)"):
            keras_cvlec.weights.from_keras_applications(ten, tiny_source)
        unscaled = keras_cvlec.build_convnext(
            "tiny", layer_scale_init_value=None, input_shape=(32, 32, 3)
        )
        with pytest.raises(ValueError, match=r"without a counterpart: .*_layer_scale"):
            keras_cvlec.weights.from_keras_applications(unscaled, tiny_source)


def _source_layer(model, name):
    """A layer of a keras.applications model, looking into its nested
    `Sequential`s (stem and downsampling layers)."""
    for layer in model.layers:
        if layer.name == name:
            return layer
        if isinstance(layer, keras.Model):
            try:
                return _source_layer(layer, name)
            except KeyError:
                pass
    raise KeyError(name)


@pytest.mark.parametrize("include_top", [True, False])
def test_imagenet_weights_plumbing(monkeypatch, include_top, tiny_source):
    """weights="imagenet" builds keras.applications.ConvNeXtTiny(
    weights="imagenet", include_top=...) and transfers it; a stand-in returns
    random weights instead of downloading."""
    real_application = keras.applications.ConvNeXtTiny
    built = []

    def application(*, weights, include_top, **kwargs):
        assert weights == "imagenet"
        assert not kwargs
        if include_top:
            source = tiny_source  # random weights already
        else:
            source = real_application(weights=None, include_top=False, input_shape=(32, 32, 3))
            _randomize_weights(source, seed=8)
        built.append((include_top, source))
        return source

    monkeypatch.setattr(keras.applications, "ConvNeXtTiny", application)
    # The weights file counts as downloaded (the builder fetches it first).
    monkeypatch.setattr(keras.utils, "get_file", lambda fname, origin, **kwargs: fname)
    model = keras_cvlec.build_convnext(
        "tiny", include_top=include_top, weights="imagenet", data_format="channels_first"
    )
    ((called_with_top, source),) = built
    assert called_with_top is include_top
    pairs = [
        ("stem_conv", 0, "convnext_tiny_stem_conv"),
        ("stem_norm", 1, "convnext_tiny_stem_layernorm"),
        ("stage3_downsample_conv", 0, "convnext_tiny_downsampling_conv_1"),
        ("stage4_downsample_norm", 0, "convnext_tiny_downsampling_layernorm_2"),
    ]
    if include_top:
        pairs += [
            ("head_norm", 0, "convnext_tiny_head_layernorm"),
            ("predictions", 0, "convnext_tiny_head_dense"),
        ]
    else:
        # A headless keras.applications ConvNeXt ends with an extra layer
        # norm, which has no counterpart here and is skipped.
        assert isinstance(source.layers[-1], keras.layers.LayerNormalization)
        assert model.layers[-1].name == "stage4_output"
    for target_name, index, source_name in pairs:
        harness.assert_allclose(
            model.get_layer(target_name).weights[index],
            _source_layer(source, source_name).weights[index],
            atol=0,
            rtol=0,
            msg=target_name,
        )
    block = model.get_layer("stage2_block3")
    for attribute, suffix in [
        ("norm", "layernorm"),
        ("pointwise_conv1", "pointwise_conv_1"),
        ("pointwise_conv2", "pointwise_conv_2"),
        ("layer_scale", "layer_scale"),
    ]:
        source_layer = source.get_layer(f"convnext_tiny_stage_1_block_2_{suffix}")
        harness.assert_allclose(
            getattr(block, attribute).weights[0],
            source_layer.weights[0],
            atol=0,
            rtol=0,
            msg=attribute,
        )


# --------------------------------------------------------------------------
# Bad arguments and registry
# --------------------------------------------------------------------------

BAD_ARGUMENTS = [
    (
        dict(variant="huge"),
        ValueError,
        r"variant.*'huge'.*'atto', 'femto', 'pico', 'nano', 'tiny', 'small', 'base', 'large', "
        r"'xlarge'",
    ),
    (dict(variant=["tiny"]), ValueError, r"variant.*\['tiny'\]"),
    (dict(layer_scale_init_value=0.0), ValueError, r"layer_scale_init_value=0\.0"),
    (dict(layer_scale_init_value=-0.1), ValueError, r"layer_scale_init_value=-0\.1"),
    (dict(input_shape=(16, 16, 3)), ValueError, r"at least 32.*input_shape=\(16, 16, 3\)"),
    (dict(include_top=False, pooling="sum"), ValueError, r"pooling.*'sum'.*None, 'avg', 'max'"),
    (dict(drop_path_rate=1.0), ValueError, r"drop_path_rate.*\[0, 1\).*1\.0"),
    (dict(gelu_approximate="tanh"), TypeError, r"gelu_approximate='tanh'"),
    (dict(num_classes=0), ValueError, r"num_classes.*num_classes=0"),
    (dict(data_format="NCHW"), ValueError, r"data_format.*'NCHW'"),
    (dict(weights="foo"), ValueError, r"weights=.*'foo'"),
    (
        dict(variant="atto", weights="imagenet"),
        ValueError,
        r"ImageNet.*variant='atto'.*Available: tiny, small, base, large, xlarge",
    ),
    (dict(num_classes=10, weights="imagenet"), ValueError, r"num_classes=1000.*num_classes=10"),
    (
        dict(layer_scale_init_value=None, weights="imagenet"),
        ValueError,
        r"layer scale.*layer_scale_init_value=None",
    ),
    (
        dict(weights="imagenet", input_shape=(64, 64, 1)),
        ValueError,
        r"3 input channels.*input_shape=\(64, 64, 1\)",
    ),
]


@pytest.mark.parametrize(
    "kwargs, error, match",
    BAD_ARGUMENTS,
    ids=[",".join(f"{k}={v!r}" for k, v in row[0].items()) for row in BAD_ARGUMENTS],
)
def test_bad_arguments(kwargs, error, match, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("keras.applications must not be called")

    for name in (
        "ConvNeXtTiny",
        "ConvNeXtSmall",
        "ConvNeXtBase",
        "ConvNeXtLarge",
        "ConvNeXtXLarge",
    ):
        monkeypatch.setattr(keras.applications, name, no_download)
    kwargs = {"variant": "tiny", **kwargs}
    with structure_only(), pytest.raises(error, match=match):
        keras_cvlec.build_convnext(kwargs.pop("variant"), **kwargs)


def test_registry():
    names = keras_cvlec.list_models()
    for variant in CONVNEXT_VARIANTS:
        assert f"convnext_{variant}" in names
    with structure_only():
        model = keras_cvlec.build_model("convnext_pico", num_classes=4, input_shape=(32, 32, 3))
        assert model.name == "convnext_pico"
        assert model.output_shape == (None, 4)
        assert model.get_layer("stage1_output").output.shape[-1] == 64
