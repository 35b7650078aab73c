"""`keras_cvlec.build_autoencoder`: the U-Net shape without skips.

References: parameter counts from the convolution formulas (3x3 kernel
`9 * c_in * c_out`, batch norm `4 * c`, 2x2 transpose `4 * c_in * c_out + c_out`),
written out layer by layer for a tiny configuration; channels_first against
channels_last with the same weights; the reconstruction loss going down.
"""

import keras
import numpy as np
import pytest

from keras_cvlec.models.autoencoder import build_autoencoder
from keras_cvlec.models.registry import build_model, list_models
from tests import harness

TINY = dict(depth=2, filters=4)


def _images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _predict(model, x):
    return harness.to_numpy(model.predict(x, batch_size=len(x), verbose=0))


def test_output_has_the_input_shape():
    model = build_autoencoder(**TINY)
    assert model.name == "autoencoder"
    for shape in [(1, 37, 53, 3), (2, 8, 8, 3), (1, 5, 70, 3)]:
        assert _predict(model, _images(shape)).shape == shape
    gray = build_autoencoder(input_shape=(37, 53, 1), **TINY)
    assert gray.output_shape == (None, 37, 53, 1)
    assert _predict(gray, _images((2, 37, 53, 1))).shape == (2, 37, 53, 1)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_channels_first_matches_channels_last(norm):
    # Width 4 == filters: the last transposed convolution's output is as wide
    # as its channels, where Keras's own adds the bias along the width on TF.
    kwargs = dict(TINY, upsampling="transpose", final_activation="sigmoid", norm=norm)
    last = build_autoencoder(**kwargs)
    first = build_autoencoder(**kwargs, data_format="channels_first")
    assert first.input_shape == (None, 3, None, None)
    rng = np.random.default_rng(1)
    last.set_weights(
        [
            (
                rng.uniform(0.5, 1.5, w.shape)
                if "variance" in w.path or "gamma" in w.path
                else rng.normal(0.0, 0.3, w.shape)
            ).astype("float32")
            for w in last.weights
        ]
    )
    first.set_weights(last.get_weights())
    x = _images((2, 13, 4, 3))
    expected = _predict(last, x)
    actual = _predict(first, x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    assert expected.shape == (2, 13, 4, 3) and np.std(expected) > 1e-3
    harness.assert_allclose(actual, expected, atol=1e-5, rtol=1e-5)


def _conv_params(pairs, norm=True):
    return sum(9 * a * b + (4 * b if norm else b) for a, b in pairs)


@pytest.mark.parametrize("upsampling", ["transpose", "nearest"])
def test_parameter_count_and_no_skips(upsampling):
    model = build_autoencoder(**TINY, upsampling=upsampling)
    blocks = [
        (3, 4),
        (4, 4),
        (4, 8),
        (8, 8),
        (8, 16),
        (16, 16),  # encoder, bottleneck
        (8, 8),
        (8, 8),
        (4, 4),
        (4, 4),
    ]  # decoder: no concatenated skip
    if upsampling == "transpose":  # 2x2 stride-2 transpose with bias
        upsample = (4 * 16 * 8 + 8) + (4 * 8 * 4 + 4)
    else:  # 3x3 convolution after the up-sampling (no bias: a norm follows)
        upsample = 9 * 16 * 8 + 9 * 8 * 4
    head = 4 * 3 + 3
    assert model.count_params() == _conv_params(blocks) + upsample + head
    # No skip connection: besides the crop (which takes the input's size),
    # every layer has one input.
    merging = [
        layer.name
        for layer in model.layers
        if isinstance(layer.input, (list, tuple)) and len(layer.input) > 1
    ]
    assert merging == ["crop"]
    assert model.get_layer("encoder2_pool").output.shape == (None, None, None, 8)
    assert model.get_layer("bottleneck_act2").output.shape == (None, None, None, 16)


def test_reconstruction_loss_decreases():
    keras.utils.set_random_seed(0)
    model = build_autoencoder(input_shape=(16, 16, 1), final_activation="sigmoid", **TINY)
    rows, cols = np.mgrid[0:16, 0:16]
    images = np.stack(
        [
            ((rows - 8) ** 2 + (cols - 8) ** 2 < 25).astype("float32"),  # a disk
            ((rows // 4 + cols // 4) % 2).astype("float32"),  # a checkerboard
            (cols / 15.0).astype("float32"),  # a ramp
            (rows > cols).astype("float32"),  # a triangle
        ]
    )[..., None]
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-2),
        loss="mse",
    )
    losses = model.fit(images, images, batch_size=4, epochs=10, shuffle=False, verbose=0).history[
        "loss"
    ]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0], losses
    reconstruction = _predict(model, images)
    assert reconstruction.shape == images.shape
    assert np.all((reconstruction >= 0) & (reconstruction <= 1))


def test_registry():
    assert "autoencoder" in list_models()
    model = build_model("autoencoder", **TINY)
    assert model.get_layer("decoder1_conv2").filters == 4
    assert model.get_layer("decoder2_upconv").strides == (2, 2)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(upsampling="max_unpool"),
            ValueError,
            r"Unknown `upsampling`: 'max_unpool'. Allowed values: 'transpose', 'bilinear', 'nearest'",
        ),
        (dict(depth=5, input_shape=(16, 64, 3)), ValueError, r"`depth`=5 is too large"),
        (dict(depth=0), ValueError, r"`depth` must be >= 1. Received: depth=0"),
        (dict(filters=0), ValueError, r"`filters` must be >= 1. Received: filters=0"),
        (dict(norm="instance"), ValueError, r"Unknown `norm`: 'instance'"),
        (dict(final_activation="sigmoidd"), ValueError, r"Unknown `final_activation`"),
        (dict(input_shape=(None, None, 0)), ValueError, r"channel dimension"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        build_autoencoder(**kwargs)
