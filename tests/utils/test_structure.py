"""`structure_only`: models built without drawing initial weights, whose
structure and counts are the real model's."""

import keras
import numpy as np

import keras_cvlec
from keras_cvlec.utils import count_macs, structure_only
from tests.harness import fit_one_step


class CountingInitializer(keras.initializers.Initializer):
    """Zeros, counting its calls."""

    calls = 0

    def __call__(self, shape, dtype=None):
        CountingInitializer.calls += 1
        return keras.ops.zeros(shape, dtype=dtype)


def _dense_model():
    inputs = keras.Input((4,))
    return keras.Model(
        inputs, keras.layers.Dense(3, kernel_initializer=CountingInitializer())(inputs)
    )


def test_no_initial_value_is_drawn():
    CountingInitializer.calls = 0
    with structure_only():
        model = _dense_model()
    assert CountingInitializer.calls == 0
    assert [tuple(w.shape) for w in model.weights] == [(4, 3), (3,)]
    _dense_model()
    assert CountingInitializer.calls == 1


def test_counts_and_layers_are_the_built_models():
    kwargs = dict(filters=4, num_classes=5, input_shape=(32, 32, 3))
    built = keras_cvlec.build_resnet("resnet18", **kwargs)
    with structure_only():
        structure = keras_cvlec.build_resnet("resnet18", **kwargs)
    assert [layer.name for layer in structure.layers] == [layer.name for layer in built.layers]
    assert [w.path for w in structure.weights] == [w.path for w in built.weights]
    assert [w.shape for w in structure.weights] == [w.shape for w in built.weights]
    assert structure.count_params() == built.count_params() > 0
    assert count_macs(structure) == count_macs(built) > 0


def test_models_built_after_the_block_train():
    with structure_only():
        keras_cvlec.build_unet(input_shape=(16, 16, 3), depth=1, filters=4)
    model = keras_cvlec.build_unet(input_shape=(16, 16, 3), num_classes=2, depth=1, filters=4)
    before = [np.array(w) for w in model.get_weights()]
    images = np.random.default_rng(0).random((2, 16, 16, 3), dtype="float32")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    fit_one_step(model, images, np.zeros((2, 16, 16), "int32"), loss=loss, jit_compile="auto")
    after = model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
