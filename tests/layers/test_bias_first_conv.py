import keras
import numpy as np

import keras_cvlec
from keras_cvlec.layers.bias_first_conv import BiasFirstConv2D
from tests.harness import assert_allclose, run_layer_test, to_numpy

RNG = np.random.default_rng(0)


def test_layer_contract():
    run_layer_test(
        BiasFirstConv2D,
        {"filters": 4, "kernel_size": 3, "padding": "same"},
        (2, 4, 4, 3),
        expected_output_shape=(2, 4, 4, 4),
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
    )


def test_channels_first_bias_goes_on_channels_when_width_equals_channels():
    """keras 3.15 Conv2D adds the bias along the width on TensorFlow here."""
    conv = BiasFirstConv2D(4, 1, data_format="channels_first", bias_initializer="random_normal")
    y = to_numpy(conv(np.zeros((1, 3, 4, 4), "float32")))
    bias = to_numpy(conv.bias)
    assert_allclose(y[0], np.broadcast_to(bias[:, None, None], (4, 4, 4)))


def test_resnet_channels_first_equals_channels_last_at_128():
    # The stem maps 128x128 to 64x64 with 64 channels: width == channels.
    kwargs = dict(num_classes=5, classifier_activation=None)
    last = keras_cvlec.build_resnet("resnet18", input_shape=(128, 128, 3), **kwargs)
    first = keras_cvlec.build_resnet(
        "resnet18", input_shape=(3, 128, 128), data_format="channels_first", **kwargs
    )
    for weight in last.weights:
        value = RNG.normal(0, 0.1, weight.shape).astype("float32")
        weight.assign(np.abs(value) + 0.5 if "variance" in weight.path else value)
    first.set_weights(last.get_weights())
    x = RNG.normal(size=(2, 128, 128, 3)).astype("float32")
    assert_allclose(first(x.transpose(0, 3, 1, 2)), last(x), atol=1e-4, rtol=1e-4)
