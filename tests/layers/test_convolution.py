"""Tests of keras_cvlec.layers.convolution (Conv2D, DepthwiseConv2D,
Conv2DTranspose) and of their old names in keras_cvlec.layers.bias_first_conv."""

import functools
import json
import os
import zipfile

import keras
import numpy as np
import pytest
from keras import ops

import keras_cvlec
from keras_cvlec import layers as cvlec_layers
from keras_cvlec.layers import bias_first_conv, convolution
from tests.harness import (
    assert_allclose,
    randomize_weights,
    run_layer_test,
    to_numpy,
    value_and_gradient,
)

RNG = np.random.default_rng(0)

# (layer class, its Keras parent, arguments, input (channels_last), output).
CASES = [
    (
        cvlec_layers.Conv2D,
        keras.layers.Conv2D,
        {"filters": 4, "kernel_size": 3, "padding": "same"},
        (2, 4, 4, 3),
        (2, 4, 4, 4),
    ),
    (
        cvlec_layers.DepthwiseConv2D,
        keras.layers.DepthwiseConv2D,
        {"kernel_size": 3, "padding": "same"},
        (2, 4, 4, 4),
        (2, 4, 4, 4),
    ),
    (
        cvlec_layers.Conv2DTranspose,
        keras.layers.Conv2DTranspose,
        {"filters": 8, "kernel_size": 2, "strides": 2},
        (2, 4, 4, 3),
        (2, 8, 8, 8),
    ),
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
def test_equals_the_keras_layer_on_channels_last(
    layer_class, parent, kwargs, input_shape, output_shape, data_format
):
    """Same weights, same outputs as the Keras layer in channels_last; in
    channels_first (outputs as wide as their channels), the same numbers
    transposed, where Keras's own layers add the bias along the width on
    TensorFlow (the bug in keras_cvlec/layers/convolution.py's docstring)."""
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


@pytest.mark.parametrize("layer_class", [cvlec_layers.Conv2D, cvlec_layers.DepthwiseConv2D])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_input_smaller_than_valid_kernel(layer_class, data_format):
    """Built for any size, a layer called on an input smaller than its
    `"valid"` kernel (dilation counted) says so, naming itself and both sizes;
    the kernel's own size is fine."""
    kwargs = {"kernel_size": 3, "dilation_rate": 2, "data_format": data_format, "name": "down"}
    if layer_class is cvlec_layers.Conv2D:
        kwargs["filters"] = 2
    layer = layer_class(**kwargs)
    layer.build((None, None, None, 2) if data_format == "channels_last" else (None, 2, None, None))
    shape = (1, 5, 4, 2) if data_format == "channels_last" else (1, 2, 5, 4)
    with pytest.raises(
        ValueError,
        match=r"'down' received an input of spatial size 5x4, smaller than its 5x5 kernel",
    ):
        layer(np.zeros(shape, "float32"))
    big = (1, 5, 5, 2) if data_format == "channels_last" else (1, 2, 5, 5)
    assert tuple(layer(np.zeros(big, "float32")).shape) == (
        (1, 1, 1, 2) if data_format == "channels_last" else (1, 2, 1, 1)
    )


def _blocks_reference(x, kernel):
    """NumPy: each input pixel times the kernel gives its own block of
    output pixels (channels_last)."""
    n, h, w, _ = x.shape
    kh, kw, filters, _ = kernel.shape
    return np.einsum("nhwc,ijoc->nhiwjo", x, kernel).reshape(n, h * kh, w * kw, filters)


@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_transpose_with_kernel_size_equal_to_stride(size, padding, data_format):
    """A kernel that does not overlap itself (a matmul on JAX): the outputs
    and the input gradient of NumPy's blocks and of `ops.conv_transpose`."""
    layer = cvlec_layers.Conv2DTranspose(
        5, size, strides=size, padding=padding, use_bias=False, data_format=data_format
    )
    x = RNG.normal(size=(2, 3, 4, 6)).astype("float32")
    upstream = RNG.normal(size=(2, 3 * size, 4 * size, 5)).astype("float32")
    to_layer = (
        (lambda a: a) if data_format == "channels_last" else (lambda a: a.transpose(0, 3, 1, 2))
    )
    from_layer = (
        (lambda a: a) if data_format == "channels_last" else (lambda a: a.transpose(0, 2, 3, 1))
    )
    layer.build(to_layer(x).shape)
    kernel = RNG.normal(size=(size, size, 5, 6)).astype("float32")
    layer.set_weights([kernel])
    assert layer._is_matmul() == (keras.backend.backend() == "jax")
    outputs, gradient = value_and_gradient(
        lambda value: ops.multiply(layer(value), to_layer(upstream)), to_layer(x)
    )
    expected = _blocks_reference(x, kernel)
    assert_allclose(from_layer(outputs), expected * upstream, atol=1e-5)
    blocks = upstream.reshape(2, 3, size, 4, size, 5)
    assert_allclose(from_layer(gradient), np.einsum("nhiwjo,ijoc->nhwc", blocks, kernel), atol=1e-5)
    keras_op = ops.conv_transpose(x, kernel, strides=size, padding=padding)
    assert_allclose(to_numpy(keras_op), expected, atol=1e-5)


def _built(layer, size, channels, data_format, kernel_shape):
    """`layer` built for 2 images of `size` pixels and `channels` channels,
    with a random kernel; returns `(input shape, images, kernel)`."""
    shape = (2, *size, channels) if data_format == "channels_last" else (2, channels, *size)
    x = RNG.normal(size=shape).astype("float32")
    layer.build(shape)
    kernel = RNG.normal(size=kernel_shape).astype("float32")
    layer.set_weights([kernel])
    return shape, x, kernel


def _expression(function, arguments, **more):
    """`function(x, kernel)` of `keras_cvlec.layers.convolution` with a
    test's `arguments` of `ops.conv` (padding, dilation rate, data format)."""
    rate = arguments["dilation_rate"]
    return functools.partial(
        function,
        padding=arguments["padding"],
        dilation_rate=(rate, rate),
        data_format=arguments["data_format"],
        **more,
    )


def _keras_op(op, data_format, **arguments):
    """Keras's `op(x, kernel, **arguments)` for `x` in `data_format`, run
    on channels-last tensors: TensorFlow's CPU convolutions take no other
    without oneDNN (see `convolution._in_supported_format`)."""
    if data_format == "channels_last":
        return functools.partial(op, data_format=data_format, **arguments)
    return lambda x, kernel: ops.transpose(
        op(ops.transpose(x, (0, 2, 3, 1)), kernel, data_format="channels_last", **arguments),
        (0, 3, 1, 2),
    )


def _assert_as_reference(layer, formula, reference, x, kernel):
    """`layer(x)` and its input gradient equal `reference(x, kernel)`'s;
    `formula(x, kernel)` (None: not checked), the layer's JAX-on-CPU
    expression run on this backend, and its input and kernel gradients too.
    The gradients are those of the outputs times a random upstream
    gradient."""
    expected = to_numpy(reference(x, kernel))
    assert np.std(expected) > 0.5
    upstream = RNG.normal(size=expected.shape).astype("float32")

    def weighted(function):
        return lambda value: ops.multiply(function(value), upstream)

    outputs, input_gradient = value_and_gradient(weighted(layer), x)
    _, expected_input_gradient = value_and_gradient(weighted(lambda a: reference(a, kernel)), x)
    assert_allclose(outputs, expected * upstream, atol=2e-5)
    assert_allclose(input_gradient, expected_input_gradient, atol=2e-5)
    if formula is None:
        return
    values, kernel_gradient = value_and_gradient(weighted(lambda k: formula(x, k)), kernel)
    _, formula_input_gradient = value_and_gradient(weighted(lambda a: formula(a, kernel)), x)
    _, expected_kernel_gradient = value_and_gradient(weighted(lambda k: reference(x, k)), kernel)
    assert_allclose(values, expected * upstream, atol=2e-5)
    assert_allclose(formula_input_gradient, expected_input_gradient, atol=2e-5)
    # a sum over every pixel: float32 rounding grows with its size
    assert_allclose(kernel_gradient, expected_kernel_gradient, rtol=2e-5, atol=1e-4)


@pytest.mark.parametrize(
    "kernel_size, strides, padding, dilation_rate, size, is_matmul",
    [
        (1, 1, "valid", 1, (5, 6), True),
        (1, 2, "same", 1, (5, 6), True),
        (1, 2, "valid", 1, (5, 6), True),
        (3, 1, "same", 1, (8, 8), True),
        (3, 1, "valid", 1, (6, 7), True),
        (2, 1, "same", 1, (5, 5), True),
        (3, 1, "same", 2, (6, 6), True),
        (3, 1, "same", 1, (9, 8), False),  # 72 output pixels
        (3, 2, "same", 1, (6, 6), False),
    ],
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv_as_matmul(kernel_size, strides, padding, dilation_rate, size, is_matmul, data_format):
    """A 1x1 kernel, or a stride-1 kernel of at most 64 output pixels, is a
    matmul on JAX and torch on a CPU: the outputs and gradients (input,
    kernel) of `ops.conv`."""
    arguments = dict(
        strides=strides, padding=padding, dilation_rate=dilation_rate, data_format=data_format
    )
    layer = cvlec_layers.Conv2D(4, kernel_size, use_bias=False, **arguments)
    shape, x, kernel = _built(layer, size, 3, data_format, (kernel_size, kernel_size, 3, 4))
    assert layer._is_matmul(shape) == (is_matmul and keras.backend.backend() in ("jax", "torch"))
    matmul = _expression(convolution._convolution_as_matmul, arguments, strides=(strides, strides))
    _assert_as_reference(
        layer, matmul if is_matmul else None, _keras_op(ops.conv, **arguments), x, kernel
    )


@pytest.mark.parametrize(
    "kernel_size, padding, dilation_rate, size, has_matmul_gradient",
    [
        (3, "same", 1, (32, 33), True),
        (2, "same", 1, (32, 32), True),
        (3, "valid", 1, (34, 35), True),
        (3, "same", 2, (33, 32), True),
        (3, "valid", 2, (35, 36), False),  # 31x32 output pixels
    ],
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv_with_matmul_kernel_gradient(
    kernel_size, padding, dilation_rate, size, has_matmul_gradient, data_format
):
    """A stride-1 kernel of at least 32x32 output pixels has a matmul per tap
    as its kernel gradient on JAX on a CPU: the outputs and gradients
    (input, kernel) of `ops.conv`."""
    arguments = dict(padding=padding, dilation_rate=dilation_rate, data_format=data_format)
    layer = cvlec_layers.Conv2D(4, kernel_size, use_bias=False, **arguments)
    shape, x, kernel = _built(layer, size, 3, data_format, (kernel_size, kernel_size, 3, 4))
    on_jax = keras.backend.backend() == "jax"
    assert not layer._is_matmul(shape)
    assert layer._has_matmul_kernel_gradient(shape) == (has_matmul_gradient and on_jax)
    with_matmul_gradient = _expression(
        convolution._convolution_with_matmul_kernel_gradient, arguments
    )
    _assert_as_reference(
        layer,
        with_matmul_gradient if has_matmul_gradient else None,
        _keras_op(ops.conv, **arguments),
        x,
        kernel,
    )


@pytest.mark.parametrize(
    "kernel_size, padding, dilation_rate, depth_multiplier",
    [
        (3, "same", 1, 1),
        (7, "same", 1, 1),
        (2, "same", 1, 2),
        (3, "valid", 2, 1),
        (4, "same", 2, 3),
    ],
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_depthwise_of_stride_one(
    kernel_size, padding, dilation_rate, depth_multiplier, data_format
):
    """A sum of shifted copies on JAX on a CPU: the outputs and gradients
    (input, kernel) of `ops.depthwise_conv` (on JAX, XLA's grouped
    convolution)."""
    arguments = dict(padding=padding, dilation_rate=dilation_rate, data_format=data_format)
    layer = cvlec_layers.DepthwiseConv2D(
        kernel_size, depth_multiplier=depth_multiplier, use_bias=False, **arguments
    )
    _, x, kernel = _built(
        layer, (9, 8), 3, data_format, (kernel_size, kernel_size, 3, depth_multiplier)
    )
    assert layer._is_shifted_sum() == (keras.backend.backend() == "jax")
    shifted = _expression(convolution._shifted_depthwise, arguments)
    _assert_as_reference(layer, shifted, _keras_op(ops.depthwise_conv, **arguments), x, kernel)


# --------------------------------------------------------------------------
# The names before issue 14 (BiasFirst*): deprecated in Python, loadable
# from files
# --------------------------------------------------------------------------

RENAMED = {
    "BiasFirstConv2D": cvlec_layers.Conv2D,
    "BiasFirstDepthwiseConv2D": cvlec_layers.DepthwiseConv2D,
    "BiasFirstConv2DTranspose": cvlec_layers.Conv2DTranspose,
}


@pytest.mark.parametrize("old_name", sorted(RENAMED))
def test_old_python_names_warn_and_are_the_new_layers(old_name):
    new_class = RENAMED[old_name]
    message = rf"{old_name}` is deprecated; use `keras_cvlec.layers.{new_class.__name__}`"
    for module in (cvlec_layers, bias_first_conv):
        with pytest.warns(DeprecationWarning, match=message):
            old_class = getattr(module, old_name)
        assert old_class is bias_first_conv.LEGACY_CLASSES[old_name]
        assert issubclass(old_class, new_class) and old_class.__name__ == old_name
    assert keras.saving.get_registered_object(f"keras_cvlec>{old_name}") is old_class
    assert keras.saving.get_registered_name(new_class) == f"keras_cvlec>{new_class.__name__}"
    with pytest.raises(AttributeError, match="BiasFirstConv3D"):
        getattr(cvlec_layers, "BiasFirstConv3D")  # noqa: B009


@pytest.mark.parametrize("layer_class, parent, kwargs, input_shape, output_shape", CASES, ids=IDS)
def test_old_registered_name_deserializes_to_the_new_layer(
    layer_class, parent, kwargs, input_shape, output_shape
):
    """A config as files saved before the rename hold it (class and
    registered name `BiasFirst...`) gives an instance of the new layer, with
    the same config, weights and outputs."""
    layer = layer_class(**kwargs, bias_initializer="random_normal", name="conv")
    x = RNG.normal(size=input_shape).astype("float32")
    expected = to_numpy(layer(x))
    old_name = "BiasFirst" + layer_class.__name__
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    assert config["registered_name"] == f"keras_cvlec>{layer_class.__name__}"
    config.update(
        class_name=old_name,
        registered_name=f"keras_cvlec>{old_name}",
        module="keras_cvlec.layers.bias_first_conv",
    )
    for deserialize in (keras.saving.deserialize_keras_object, keras.layers.deserialize):
        loaded = deserialize(config)
        assert isinstance(loaded, layer_class) and type(loaded).__name__ == old_name
        assert loaded.get_config() == layer.get_config() and loaded.built
        loaded.set_weights(layer.get_weights())
        assert_allclose(loaded(x), expected, atol=1e-6)


def _functional(conv_class, transpose_class, depthwise_class):
    inputs = keras.Input((6, 6, 3))
    x = conv_class(4, 3, padding="same", bias_initializer="random_normal")(inputs)
    x = depthwise_class(3, padding="same", bias_initializer="random_normal")(x)
    x = keras.layers.Conv2D(4, 1)(x)  # a Keras layer of the same snake-case name
    x = transpose_class(2, 2, strides=2, bias_initializer="random_normal")(x)
    return keras.Model(inputs, x)


NEW_NAMES = {"Conv2D", "DepthwiseConv2D", "Conv2DTranspose"}


def _registered_convolutions(path):
    """The names, old or new, under which the `.keras` file at `path`
    registers this module's layers."""
    with zipfile.ZipFile(path) as archive:
        text = archive.read("config.json").decode()
    return {name for name in NEW_NAMES | set(RENAMED) if f'"keras_cvlec>{name}"' in text}


@pytest.mark.parametrize("old", [False, True], ids=["new_names", "old_names"])
def test_keras_file_round_trip(tmp_path, old):
    """A model saved with the new layers, and one saved with the old names
    (as files written before the rename), load with their weights."""
    names = ("Conv2D", "Conv2DTranspose", "DepthwiseConv2D")
    if old:
        classes = [bias_first_conv.LEGACY_CLASSES["BiasFirst" + name] for name in names]
    else:
        classes = [getattr(cvlec_layers, name) for name in names]
    model = _functional(*classes)
    randomize_weights(model)
    x = RNG.normal(size=(2, 6, 6, 3)).astype("float32")
    path = str(tmp_path / "model.keras")
    model.save(path)
    assert _registered_convolutions(path) == (set(RENAMED) if old else NEW_NAMES)
    loaded = keras.saving.load_model(path)
    kinds = [type(layer) for layer in loaded.layers[1:]]
    assert kinds[2] is keras.layers.Conv2D
    new_classes = (cvlec_layers.Conv2D, cvlec_layers.DepthwiseConv2D, cvlec_layers.Conv2DTranspose)
    for kind, new_class in zip(kinds[:2] + kinds[3:], new_classes):
        assert issubclass(kind, new_class) and (kind is new_class) != old
    assert_allclose(loaded(x), model(x), atol=1e-6)


def test_shipped_file_saved_with_the_old_names_loads_as_the_new_layers():
    """saved_models/unet_shapes was saved with BiasFirstConv2D and
    BiasFirstConv2DTranspose: its layers are the new ones, weights loaded."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(root, "saved_models", "unet_shapes", "unet_shapes.keras")
    assert _registered_convolutions(path) == {"BiasFirstConv2D", "BiasFirstConv2DTranspose"}
    model = keras.saving.load_model(path, compile=False)
    convs = [layer for layer in model.layers if isinstance(layer, cvlec_layers.Conv2D)]
    transposes = [
        layer for layer in model.layers if isinstance(layer, cvlec_layers.Conv2DTranspose)
    ]
    assert len(convs) >= 10 and len(transposes) >= 1
    # Loaded, not initial, weights: trained biases are not all zero.
    assert all(np.any(to_numpy(layer.bias) != 0) for layer in convs + transposes)
