import keras
import numpy as np
import pytest

import keras_cvlec
from keras_cvlec.layers import BiasFirstConv2D, BiasFirstConv2DTranspose, BiasFirstDepthwiseConv2D
from tests.harness import assert_allclose, randomize_weights, run_layer_test, to_numpy

RNG = np.random.default_rng(0)

# (layer class, its Keras parent, arguments, input (channels_last), output).
CASES = [
    (BiasFirstConv2D, keras.layers.Conv2D, {"filters": 4, "kernel_size": 3, "padding": "same"},
     (2, 4, 4, 3), (2, 4, 4, 4)),
    (BiasFirstDepthwiseConv2D, keras.layers.DepthwiseConv2D, {"kernel_size": 3, "padding": "same"},
     (2, 4, 4, 4), (2, 4, 4, 4)),
    (BiasFirstConv2DTranspose, keras.layers.Conv2DTranspose,
     {"filters": 8, "kernel_size": 2, "strides": 2}, (2, 4, 4, 3), (2, 8, 8, 8)),
]
IDS = [case[0].__name__ for case in CASES]


@pytest.mark.parametrize("layer_class, parent, kwargs, input_shape, output_shape", CASES, ids=IDS)
def test_layer_contract(layer_class, parent, kwargs, input_shape, output_shape):
    run_layer_test(
        layer_class,
        kwargs,
        input_shape,
        expected_output_shape=output_shape,
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
    )


@pytest.mark.parametrize("layer_class, parent, kwargs, input_shape, output_shape", CASES, ids=IDS)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_equals_the_keras_layer_on_channels_last(layer_class, parent, kwargs, input_shape, output_shape, data_format):
    """Same weights, same outputs as the Keras layer in channels_last; in
    channels_first (outputs as wide as their channels), the same numbers
    transposed, where Keras 3.15's own layers add the bias along the width
    on TensorFlow."""
    kwargs = dict(kwargs, bias_initializer="random_normal", activation="relu")
    reference = parent(**kwargs, data_format="channels_last")
    layer = layer_class(**kwargs, data_format=data_format)
    x = RNG.normal(size=input_shape).astype("float32")
    expected = to_numpy(reference(x))
    if data_format == "channels_first":
        layer(x.transpose(0, 3, 1, 2))
        layer.set_weights(reference.get_weights())
        actual = to_numpy(layer(x.transpose(0, 3, 1, 2))).transpose(0, 2, 3, 1)
    else:
        layer(x)
        layer.set_weights(reference.get_weights())
        actual = to_numpy(layer(x))
    assert expected.shape == output_shape and np.std(expected) > 0.1
    assert_allclose(actual, expected, atol=1e-5)


def test_resnet_channels_first_equals_channels_last_at_128():
    # The stem maps 128x128 to 64x64 with 64 channels: width == channels.
    kwargs = dict(num_classes=5, classifier_activation=None)
    last = keras_cvlec.build_resnet("resnet18", input_shape=(128, 128, 3), **kwargs)
    first = keras_cvlec.build_resnet(
        "resnet18", input_shape=(3, 128, 128), data_format="channels_first", **kwargs
    )
    randomize_weights(last)
    first.set_weights(last.get_weights())
    x = RNG.normal(size=(2, 128, 128, 3)).astype("float32")
    assert_allclose(first(x.transpose(0, 3, 1, 2)), last(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("layer_class", [BiasFirstConv2D, BiasFirstDepthwiseConv2D])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_input_smaller_than_valid_kernel(layer_class, data_format):
    """Built for any size, a layer called on an input smaller than its
    `"valid"` kernel (dilation counted) says so, naming itself and both sizes;
    the kernel's own size is fine."""
    kwargs = {"kernel_size": 3, "dilation_rate": 2, "data_format": data_format, "name": "down"}
    if layer_class is BiasFirstConv2D:
        kwargs["filters"] = 2
    layer = layer_class(**kwargs)
    layer.build((None, None, None, 2) if data_format == "channels_last" else (None, 2, None, None))
    shape = (1, 5, 4, 2) if data_format == "channels_last" else (1, 2, 5, 4)
    with pytest.raises(ValueError, match=r"'down' received an input of spatial size 5x4, smaller than its 5x5 kernel"):
        layer(np.zeros(shape, "float32"))
    big = (1, 5, 5, 2) if data_format == "channels_last" else (1, 2, 5, 5)
    assert tuple(layer(np.zeros(big, "float32")).shape) == ((1, 1, 1, 2) if data_format == "channels_last" else (1, 2, 1, 1))
