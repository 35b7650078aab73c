"""LayerScale: a learnable per-channel scale, channels_last and channels_first."""

import keras
import numpy as np
import pytest

from keras_cvlec.layers import LayerScale
from tests.harness import (
    assert_allclose,
    fit_one_step,
    run_layer_test,
    to_numpy,
    value_and_gradient,
)


@pytest.mark.parametrize(
    "data_format, shape",
    [("channels_last", (2, 3, 3, 4)), ("channels_first", (2, 4, 3, 3))],
)
def test_layer_contract(data_format, shape):
    run_layer_test(
        LayerScale,
        {"init_value": 0.5, "data_format": data_format},
        shape,
        expected_output_shape=shape,
        expected_output_dtype="float32",
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=0,
        expected_num_seed_generators=0,
    )


@pytest.mark.parametrize(
    "data_format, shape, axis",
    [
        ("channels_last", (2, 3, 5, 4), 3),
        ("channels_first", (2, 4, 3, 5), 1),
        ("channels_last", (3, 4), 1),
        ("channels_first", (3, 4), 1),
        ("channels_first", (2, 4, 6), 1),
    ],
)
def test_output_is_input_times_gamma_per_channel(data_format, shape, axis):
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    layer = LayerScale(init_value=1e-6 * 3, data_format=data_format)
    # Initially every channel is scaled by init_value.
    assert_allclose(layer(x), x * np.float32(3e-6), atol=0, rtol=1e-6)
    assert tuple(layer.gamma.shape) == (4,)
    assert_allclose(layer.gamma, np.full((4,), 3e-6, "float32"), atol=0, rtol=0)
    # Distinct per-channel values land on the channel axis.
    gamma = np.array([1.0, -2.0, 0.5, 4.0], "float32")
    layer.gamma.assign(gamma)
    broadcast = [1] * len(shape)
    broadcast[axis] = 4
    assert_allclose(layer(x), x * gamma.reshape(broadcast), atol=0, rtol=1e-6)


def test_default_data_format_follows_keras_config():
    keras.config.set_image_data_format("channels_first")
    layer = LayerScale(init_value=1.0)
    assert layer.data_format == "channels_first"
    layer.build((2, 4, 3, 3))
    assert tuple(layer.gamma.shape) == (4,)
    keras.config.set_image_data_format("channels_last")
    assert LayerScale(init_value=1.0).data_format == "channels_last"


def test_gamma_is_the_only_weight_and_trainable():
    layer = LayerScale(init_value=0.1)
    layer.build((None, 7, 7, 6))
    assert [w.name for w in layer.trainable_weights] == ["gamma"]
    assert layer.non_trainable_weights == []
    assert tuple(layer.gamma.shape) == (6,)
    assert keras.backend.standardize_dtype(layer.gamma.dtype) == "float32"


def test_gradients_wrt_input_and_gamma():
    x = np.random.default_rng(1).standard_normal((2, 2, 2, 3)).astype("float32")
    layer = LayerScale(init_value=0.25)
    _, grad = value_and_gradient(lambda t: layer(t), x)
    assert_allclose(grad, np.full_like(x, 0.25), atol=0, rtol=0)
    # d gamma: with mae against targets far below the outputs, d loss / d y
    # is 1 / N for every element, so d loss / d gamma_c is the sum of x over
    # channel c divided by N; one SGD step (lr 0.01) moves gamma by 0.01 that.
    inputs = keras.Input((2, 2, 3), batch_size=2)
    model = keras.Model(inputs, LayerScale(init_value=0.25, name="scale")(inputs))
    before = to_numpy(model.get_layer("scale").gamma).copy()
    targets = np.full((2, 2, 2, 3), -100.0, "float32")
    fit_one_step(model, x, targets, loss="mae")
    after = to_numpy(model.get_layer("scale").gamma)
    expected_grad = x.sum(axis=(0, 1, 2)) / x.size
    assert_allclose(before - after, 0.01 * expected_grad, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize(
    "init_value, error",
    [
        (0, ValueError),
        (-1, ValueError),
        (0.0, ValueError),
        ("a", TypeError),
        (None, TypeError),
        (True, TypeError),
        (float("nan"), ValueError),
    ],
)
def test_bad_init_value_names_the_argument(init_value, error):
    with pytest.raises(error, match="init_value"):
        LayerScale(init_value=init_value)


def test_bad_data_format_names_the_argument():
    with pytest.raises(ValueError, match="data_format.*channels_middle"):
        LayerScale(init_value=1.0, data_format="channels_middle")


def test_unknown_channel_dimension_is_refused():
    with pytest.raises(ValueError, match="channel"):
        LayerScale(init_value=1.0).build((2, 3, 3, None))
