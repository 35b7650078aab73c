"""`keras_cvlec.build_segnet`: shapes, parameter counts, the argmax decoder, training.

References: parameter counts from the convolution formula (3x3 kernel
`9 * c_in * c_out`, batch norm `4 * c`: gamma, beta and the two moving
statistics), written out layer by layer for a tiny configuration; max
pooling and unpooling recomputed in NumPy from the model's own intermediate
feature maps; channels_first against channels_last with the same weights.
"""

import keras
import numpy as np
import pytest

from keras_cvlec.layers.unpooling import MaxPoolingWithArgmax2D, MaxUnpooling2D
from keras_cvlec.models.registry import build_model, list_models
from keras_cvlec.models.segnet import build_segnet
from tests import harness

TINY = dict(depth=2, filters=4, convs_per_level=(1, 2), num_classes=3)


def _images(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _predict(model, x):
    """Inference outputs as NumPy (`predict`: compiled, fast on JAX)."""
    return harness.to_numpy(model.predict(x, batch_size=len(x), verbose=0))


def _windows(a):
    """(N, H, W, C) -> (N, H/2, W/2, C, 4): the 2x2 windows in scan order."""
    n, h, w, c = a.shape
    a = a.reshape(n, h // 2, 2, w // 2, 2, c)
    return a.transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4)


def _unpool_reference(pooling_input, values):
    """NumPy max-unpooling: `values` put at the first maximum of each 2x2 window
    of `pooling_input` (channels last, even size), zeros elsewhere."""
    windows = _windows(pooling_input)
    onehot = np.eye(4, dtype=bool)[np.argmax(windows, axis=-1)]  # first max wins
    scattered = np.where(onehot, values[..., None], 0.0)
    n, hh, ww, c, _ = scattered.shape
    scattered = scattered.reshape(n, hh, ww, c, 2, 2).transpose(0, 1, 4, 2, 5, 3)
    return scattered.reshape(n, 2 * hh, 2 * ww, c)


def test_any_input_size_through_one_model():
    model = build_segnet(**TINY)
    assert model.name == "segnet"
    for shape in [(1, 37, 53, 3), (2, 8, 8, 3), (1, 5, 70, 3)]:
        assert _predict(model, _images(shape)).shape == shape[:3] + (3,)
    fixed = build_segnet(input_shape=(37, 53, 1), **TINY)
    assert fixed.output_shape == (None, 37, 53, 3)
    assert _predict(fixed, _images((2, 37, 53, 1))).shape == (2, 37, 53, 3)


@pytest.mark.parametrize("final_activation", ["softmax", "log_softmax"])
def test_channels_first_matches_channels_last(final_activation):
    # (Also checks that the softmax normalises the channels, not the width.)
    # Width 4 == num_classes: the head's output is as wide as its channels,
    # where Keras's own Conv2D adds the bias along the width on TensorFlow.
    kwargs = dict(TINY, num_classes=4, final_activation=final_activation)
    last = build_segnet(**kwargs)
    first = build_segnet(**kwargs, data_format="channels_first")
    assert first.input_shape == (None, 3, None, None)
    rng = np.random.default_rng(1)
    # Random weights everywhere, BN statistics included, so that nothing is trivial.
    weights = [
        rng.uniform(0.5, 1.5, w.shape)
        if "variance" in w.path or "gamma" in w.path
        else rng.normal(0.0, 0.5, w.shape)
        for w in last.weights
    ]
    last.set_weights([w.astype("float32") for w in weights])
    first.set_weights(last.get_weights())
    x = _images((2, 13, 4, 3))
    expected = _predict(last, x)
    actual = _predict(first, x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    assert expected.shape == (2, 13, 4, 4)
    harness.assert_allclose(actual, expected, atol=1e-5, rtol=1e-5)
    probabilities = expected if final_activation == "softmax" else np.exp(expected)
    harness.assert_allclose(probabilities.sum(axis=-1), np.ones((2, 13, 4)), atol=1e-5)


def _conv_params(pairs, norm):
    """3x3 convolutions (c_in, c_out): kernel + batch norm (4 c) or bias (c)."""
    per_channel = 4 if norm == "batch" else 1
    return sum(9 * c_in * c_out + per_channel * c_out for c_in, c_out in pairs)


@pytest.mark.parametrize("norm", ["batch", None])
def test_parameter_count(norm):
    model = build_segnet(**TINY, norm=norm)
    # widths 4, 8; each decoder level ends with the next level's width.
    encoder = [(3, 4), (4, 8), (8, 8)]
    decoder = [(8, 8), (8, 4), (4, 4)]
    head = 4 * 3 + 3
    expected = _conv_params(encoder + decoder, norm) + head
    assert model.count_params() == expected
    non_trainable = 2 * sum(c for _, c in encoder + decoder) if norm == "batch" else 0
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == non_trainable
    # As many argmax poolings as unpoolings, one a level, and no skip concatenation.
    pools = [layer.name for layer in model.layers if isinstance(layer, MaxPoolingWithArgmax2D)]
    unpools = [layer.name for layer in model.layers if isinstance(layer, MaxUnpooling2D)]
    assert pools == ["encoder1_pool", "encoder2_pool"]
    assert unpools == ["decoder2_unpool", "decoder1_unpool"]
    assert not any(isinstance(layer, keras.layers.Concatenate) for layer in model.layers)


def test_registry_default_is_the_vgg16_layout():
    assert "segnet" in list_models()
    model = build_model("segnet", input_shape=(32, 32, 3), filters=1, norm=None)
    assert model.name == "segnet"
    # VGG-16: 2, 2, 3, 3, 3 convolutions of 1, 2, 4, 8, 8 x filters channels.
    encoder = [
        (3, 1),
        (1, 1),
        (1, 2),
        (2, 2),
        (2, 4),
        (4, 4),
        (4, 4),
        (4, 8),
        (8, 8),
        (8, 8),
        (8, 8),
        (8, 8),
        (8, 8),
    ]
    decoder = [
        (8, 8),
        (8, 8),
        (8, 8),
        (8, 8),
        (8, 8),
        (8, 4),
        (4, 4),
        (4, 4),
        (4, 2),
        (2, 2),
        (2, 1),
        (1, 1),
        (1, 1),
    ]
    assert model.count_params() == _conv_params(encoder + decoder, None) + 1 * 2 + 2
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.name, c.filters) for c in convs if c.name.startswith("decoder")][:4] == [
        ("decoder5_conv1", 8),
        ("decoder5_conv2", 8),
        ("decoder5_conv3", 8),
        ("decoder4_conv1", 8),
    ]
    assert model.get_layer("encoder5_pool").output[0].shape == (None, 1, 1, 8)
    assert model.get_layer("decoder1_conv2").filters == 1


def test_unpooling_puts_values_at_the_encoder_argmax():
    model = build_segnet(**TINY)
    names = [
        "encoder1_act1",
        "encoder2_act2",
        "decoder2_unpool",
        "decoder2_act2",
        "decoder1_unpool",
    ]
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    x = _images((2, 13, 18, 3), seed=3)  # padded to 16 x 20 inside the model
    enc1, enc2, unpooled2, dec2, unpooled1 = _predict(probe, x)
    assert enc1.shape == (2, 16, 20, 4) and unpooled1.shape == (2, 16, 20, 4)
    assert enc2.shape == (2, 8, 10, 8) and unpooled2.shape == (2, 8, 10, 8)
    # Deepest level: unpool(pool(a)) keeps a at each window's maximum only.
    pooled2 = _windows(enc2).max(axis=-1)
    harness.assert_allclose(unpooled2, _unpool_reference(enc2, pooled2), atol=0, rtol=0)
    # Level 1: the decoder's features go where encoder level 1 had its maxima.
    harness.assert_allclose(unpooled1, _unpool_reference(enc1, dec2), atol=0, rtol=0)
    # At most one non-zero per window, and the maps are not trivially zero.
    assert (_windows(unpooled1) != 0).sum(axis=-1).max() == 1
    assert (unpooled1 != 0).sum() > 0.25 * dec2.size
    assert (unpooled2 != 0).sum() > 0.25 * pooled2.size


def test_training_reduces_the_loss():
    keras.utils.set_random_seed(0)
    model = build_segnet(**TINY)
    x = _images((4, 16, 16, 3))
    y = (x[..., 0] > 0).astype("int32") + (x[..., 1] > 1).astype("int32")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    losses = model.fit(x, y, batch_size=4, epochs=10, shuffle=False, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.85 * losses[0], losses


def test_mixed_precision_and_keras_file(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = build_segnet(**TINY, final_activation="softmax")
    assert model.get_layer("encoder1_conv1").compute_dtype == "bfloat16"
    assert model.get_layer("encoder1_pool").output[1].dtype == "int32"
    assert model.output.dtype == "float32"
    keras.config.set_dtype_policy("float32")
    x = _images((1, 13, 18, 3))
    output = _predict(model, x)
    assert output.dtype == np.float32 and np.all(np.isfinite(output))
    path = str(tmp_path / "segnet.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    harness.assert_allclose(_predict(loaded, x), output, atol=0, rtol=0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(depth=6, convs_per_level=1, input_shape=(32, 32, 3)),
            ValueError,
            r"`depth`=6 is too large for input_shape=\(32, 32, 3\)",
        ),
        (dict(depth=6), ValueError, r"convs_per_level.*depth=6"),
        (dict(filters=0), ValueError, r"`filters` must be >= 1. Received: filters=0"),
        (dict(filters=2.0), TypeError, r"`filters` must be an int"),
        (dict(norm="instance"), ValueError, r"Unknown `norm`: 'instance'"),
        (dict(num_classes=0), ValueError, r"num_classes=0"),
        (dict(convs_per_level=(2, 0, 3, 3, 3)), ValueError, r"convs_per_level=\(2, 0"),
        (dict(convs_per_level="2"), TypeError, r"convs_per_level='2'"),
        (dict(final_activation="softmaxx"), ValueError, r"Unknown `final_activation`"),
        (dict(data_format="NHWC"), ValueError, r"Unknown `data_format`: 'NHWC'"),
        (dict(input_shape=(32, 32)), ValueError, r"input_shape=\(32, 32\)"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        build_segnet(**kwargs)
