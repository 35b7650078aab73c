"""`keras_cvlec.build_fcn` (FCN-32s, -16s, -8s on ResNet and ConvNeXt backbones).

References: the head's parameter count from the layer formulas (1x1 score
convolution `c * n + n`, transpose convolution `(2 f)**2 * n * n` without
bias) and ResNet-18's from torchvision's count (REFERENCES.md); bilinear
up-sampling recomputed in NumPy (interpolation at pixel centres); the
stage sizes from the strides 8, 16, 32; channels_first against channels_last
with the same weights.

Cost: ResNet-18 at 32..64 pixels, batch <= 2; on JAX every new weight shape
compiles its initializer, so most tests share the ResNet-18 FCN-8s shapes.
"""

import keras
import numpy as np
import pytest

from keras_cvlec import layers as cvlec_layers
from keras_cvlec.models.fcn import FCN_VARIANTS, BilinearUpsamplingKernel, build_fcn
from keras_cvlec.models.registry import build_model, list_models
from keras_cvlec.utils import structure_only
from tests import harness

RESNET18_STAGE_WIDTHS = {2: 128, 3: 256, 4: 512}
CONVNEXT_ATTO_STAGE_WIDTHS = {2: 80, 3: 160, 4: 320}


def _images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _predict(model, x):
    return harness.to_numpy(model.predict(x, batch_size=len(x), verbose=0))


def _blocks(batch, size, seed=0):
    """Images with a 12 x 12 square of class 1 (bright in channel 0) and one of
    class 2 (bright in channel 1) on noise: labels an FCN can learn."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((batch, size, size), "int32")
    for index in range(batch):
        for label in (1, 2):
            row, col = rng.integers(0, size - 12, 2)
            labels[index, row : row + 12, col : col + 12] = label
    images = rng.normal(0.0, 0.3, (batch, size, size, 3)).astype("float32")
    images[..., 0] += 2.0 * (labels == 1)
    images[..., 1] += 2.0 * (labels == 2)
    return images, labels


def _randomize_scores(model, seed=0):
    """The score convolutions start at zero (as in the paper): give them random
    values so that the outputs depend on every fused stage."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.name.startswith("score_stage"):
            layer.set_weights(
                [rng.normal(0.0, 0.1, w.shape).astype("float32") for w in layer.weights]
            )


@pytest.mark.parametrize("backbone", ["resnet18", "convnext_atto"])
@pytest.mark.parametrize("variant", ["32s", "16s", "8s"])
def test_full_resolution_and_fused_scores(backbone, variant):
    model = build_fcn(backbone=backbone, variant=variant, num_classes=3, input_shape=(37, 53, 3))
    assert model.name == f"fcn{variant}_{backbone}"
    assert model.output_shape == (None, 37, 53, 3)
    assert _predict(model, _images((1, 37, 53, 3))).shape == (1, 37, 53, 3)
    names = [layer.name for layer in model.layers]
    fused = {"32s": [], "16s": [3], "8s": [3, 2]}[variant]
    assert [n for n in names if n.startswith("score_stage")] == [
        f"score_stage{stage}" for stage in [4] + fused
    ]
    assert [n for n in names if n.startswith("fuse_stage")] == [
        f"fuse_stage{stage}" for stage in fused
    ]
    final_stride = {"32s": 32, "16s": 16, "8s": 8}[variant]
    transposes = [
        layer for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose)
    ]
    assert [(t.name, t.kernel_size, t.strides) for t in transposes] == [
        (f"upscore2_stage{stage + 1}", (4, 4), (2, 2)) for stage in fused
    ] + [(f"upscore{final_stride}", (2 * final_stride,) * 2, (final_stride,) * 2)]
    # 37 x 53 is padded to 64 x 64: stage k has stride 2**(k + 1).
    widths = RESNET18_STAGE_WIDTHS if backbone == "resnet18" else CONVNEXT_ATTO_STAGE_WIDTHS
    for stage in [4] + fused:
        layer = model.get_layer(f"score_stage{stage}")
        size = 64 // 2 ** (stage + 1)
        assert layer.input.shape == (None, size, size, widths[stage])
        assert layer.output.shape == (None, size, size, 3)


def test_any_input_size_through_one_model():
    model = build_fcn(backbone="resnet18", variant="8s", num_classes=3)
    _randomize_scores(model)
    for shape in [(1, 37, 53, 3), (2, 32, 32, 3), (1, 33, 96, 3)]:
        assert _predict(model, _images(shape)).shape == shape[:3] + (3,)


def test_parameter_count():
    n = 3
    with structure_only():
        models = {v: build_fcn(backbone="resnet18", variant=v, num_classes=n) for v in FCN_VARIANTS}
    # torchvision ResNet-18 without its 512 x 1000 classifier, plus the biases of
    # the 20 convolutions of the v1 (keras.applications-style) ResNet.
    conv_biases = 64 + 4 * 64 + (4 * 128 + 128) + (4 * 256 + 256) + (4 * 512 + 512)
    backbone = 11_689_512 - (512 * 1000 + 1000) + conv_biases
    for model in models.values():
        assert (
            sum(int(np.prod(w.shape)) for w in model.get_layer("backbone").trainable_weights)
            == backbone
        )

    def score(width):
        return width * n + n

    def transpose(factor):
        return (2 * factor) ** 2 * n * n

    heads = {
        "32s": score(512) + transpose(32),
        "16s": score(512) + transpose(2) + score(256) + transpose(16),
        "8s": score(512) + transpose(2) + score(256) + transpose(2) + score(128) + transpose(8),
    }
    for variant, model in models.items():
        head = model.count_params() - model.get_layer("backbone").count_params()
        assert head == heads[variant], variant


def _bilinear_reference(x, factor):
    """Bilinear up-sampling by `factor` at pixel centres (align_corners=False)
    of (N, H, W, C), with NaN where it would need values outside the image."""

    def along(a, axis):
        size = a.shape[axis]
        positions = (np.arange(size * factor) + 0.5) / factor - 0.5
        low = np.floor(positions).astype(int)
        frac = positions - low
        valid = (low >= 0) & (low + 1 <= size - 1)
        low_c, high_c = np.clip(low, 0, size - 1), np.clip(low + 1, 0, size - 1)
        shape = [1] * a.ndim
        shape[axis] = -1
        out = np.take(a, low_c, axis=axis) * (1 - frac).reshape(shape) + np.take(
            a, high_c, axis=axis
        ) * frac.reshape(shape)
        return np.where(valid.reshape(shape), out, np.nan)

    return along(along(x, 1), 2)


@pytest.mark.parametrize("factor", [2, 8])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_bilinear_kernel_interpolates(factor, data_format):
    layer = cvlec_layers.Conv2DTranspose(
        2,
        2 * factor,
        strides=factor,
        padding="same",
        use_bias=False,
        kernel_initializer=BilinearUpsamplingKernel(),
        data_format=data_format,
    )
    x = _images((1, 5, 6, 2))
    if data_format == "channels_first":
        y = harness.to_numpy(layer(x.transpose(0, 3, 1, 2))).transpose(0, 2, 3, 1)
    else:
        y = harness.to_numpy(layer(x))
    assert y.shape == (1, 5 * factor, 6 * factor, 2)
    expected = _bilinear_reference(x, factor)
    interior = ~np.isnan(expected)
    assert interior.sum() > 0.5 * expected.size
    harness.assert_allclose(y[interior], expected[interior], atol=1e-5, rtol=1e-5)
    # Channels do not mix: the kernel is zero off the channel diagonal.
    kernel = harness.to_numpy(layer.kernel)
    assert kernel.shape == (2 * factor, 2 * factor, 2, 2)
    assert np.all(kernel[:, :, 0, 1] == 0) and np.all(kernel[:, :, 1, 0] == 0)
    config = keras.initializers.serialize(BilinearUpsamplingKernel())
    assert isinstance(keras.initializers.deserialize(config), BilinearUpsamplingKernel)


def test_channels_first_matches_channels_last():
    last = build_fcn(backbone="resnet18", variant="8s", num_classes=3)
    first = build_fcn(
        backbone="resnet18", variant="8s", num_classes=3, data_format="channels_first"
    )
    assert first.input_shape == (None, 3, None, None)
    _randomize_scores(last)
    first.set_weights(last.get_weights())
    # Width 96: the stride-32 score map is 3 wide with 3 classes, where
    # Keras's own Conv2D adds the bias along the width on TensorFlow.
    x = _images((1, 37, 96, 3))
    expected = _predict(last, x)
    actual = _predict(first, x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    assert expected.shape == (1, 37, 96, 3) and np.std(expected) > 1e-3
    harness.assert_allclose(actual, expected, atol=1e-4, rtol=1e-4)


def test_freeze_backbone_keeps_its_weights():
    model = build_fcn(backbone="resnet18", variant="8s", num_classes=3, freeze_backbone=True)
    backbone = model.get_layer("backbone")
    assert not backbone.trainable
    # Trainable: three score convolutions (kernel, bias) and three transposes.
    assert len(model.trainable_weights) == 3 * 2 + 3
    before = [harness.to_numpy(w).copy() for w in backbone.weights]
    scores_before = harness.to_numpy(model.get_layer("score_stage2").kernel).copy()
    harness.fit_one_step(model, _images((2, 32, 32, 3)), _images((2, 32, 32, 3), seed=1))
    for weight, value in zip(backbone.weights, before):
        harness.assert_allclose(weight, value, atol=0, rtol=0, msg=weight.path)
    assert not np.allclose(harness.to_numpy(model.get_layer("score_stage2").kernel), scores_before)


def test_training_reduces_the_loss():
    keras.utils.set_random_seed(0)
    model = build_fcn(backbone="resnet18", variant="8s", num_classes=3)
    x, y = _blocks(2, 32)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    backbone_before = harness.to_numpy(model.get_layer("backbone").trainable_weights[0]).copy()
    losses = model.fit(x, y, batch_size=2, epochs=8, shuffle=False, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[0] == pytest.approx(np.log(3), rel=1e-4)  # zero scores at the start
    assert losses[-1] < 0.85 * losses[0], losses
    # Not frozen: the backbone learns too.
    assert not np.allclose(
        harness.to_numpy(model.get_layer("backbone").trainable_weights[0]), backbone_before
    )


def test_keras_file_round_trip(tmp_path):
    model = build_fcn(backbone="convnext_atto", variant="16s", num_classes=2)
    _randomize_scores(model)
    x = _images((1, 33, 40, 3))
    path = str(tmp_path / "fcn.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("upscore16").kernel_initializer, BilinearUpsamplingKernel)
    harness.assert_allclose(_predict(loaded, x), _predict(model, x), atol=1e-6, rtol=1e-6)


def test_registry():
    for variant in FCN_VARIANTS:
        assert f"fcn{variant}" in list_models()
    model = build_model("fcn16s", backbone="resnet18", num_classes=2, input_shape=(32, 32, 3))
    assert model.name == "fcn16s_resnet18"
    assert model.output_shape == (None, 32, 32, 2)
    assert [layer.name for layer in model.layers if layer.name.startswith("fuse")] == [
        "fuse_stage3"
    ]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(variant="4s"), ValueError, r"Unknown `variant`: '4s'.*'32s', '16s', '8s'"),
        (
            dict(backbone="vgg16"),
            ValueError,
            r"Unknown `backbone`: 'vgg16'. Valid backbones: .*resnet18",
        ),
        (dict(backbone="unet"), ValueError, r"Unknown `backbone`: 'unet'.*convnext_atto"),
        (dict(num_classes=0), ValueError, r"num_classes=0"),
        (dict(freeze_backbone=1), TypeError, r"`freeze_backbone` must be True or False"),
        (
            dict(input_shape=(16, 64, 3)),
            ValueError,
            r"The total stride of `backbone`='resnet18' is too large for input_shape=\(16, 64, 3\): "
            r"the network's total stride 32",
        ),
        (dict(backbone=None), ValueError, r"Unknown `backbone`: None"),
        (
            dict(backbone_weights="imagenet"),
            ValueError,
            r"backbone='resnet18' has no ImageNet weights",
        ),
        (
            dict(backbone="resnet50", backbone_weights="imagenet", input_shape=(None, None, 4)),
            ValueError,
            r"`backbone_weights='imagenet'` needs 3 input channels. Received: input_shape=\(None, None, 4\)",
        ),
        (dict(final_activation="nope"), ValueError, r"Unknown `final_activation`: 'nope'"),
        (
            dict(backbone_weights="weights.npz"),
            ValueError,
            r"`backbone_weights` must be .* backbone_weights='weights.npz'",
        ),
        (dict(data_format="NCHW"), ValueError, r"Unknown `data_format`: 'NCHW'"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        build_fcn(**{"backbone": "resnet18", **kwargs})
