"""Tests of tests/harness.py: it passes correct layers and fails broken ones.

Each broken layer below has exactly one defect, and the test asserts that
`run_layer_test` raises an AssertionError naming the check that caught it.
"""

import pathlib

import keras
import numpy as np
import pytest
from keras import ops

from tests.harness import (
    assert_allclose,
    backend_name,
    count_seed_generators,
    fit_one_step,
    jit_compile_setting,
    run_layer_test,
    value_and_gradient,
)

pytest_plugins = ["pytester"]

CONFTEST = pathlib.Path(__file__).with_name("conftest.py")
PACKAGE = "keras_cvlec_harness_tests"
FAST = dict(run_training_check=False, run_mixed_precision_check=False, run_saving_check=False)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Scale(keras.layers.Layer):
    """A correct layer: multiplies by a trainable per-channel weight."""

    def __init__(self, init=2.0, **kwargs):
        super().__init__(**kwargs)
        self.init = init

    def build(self, input_shape):
        self.w = self.add_weight(
            shape=(input_shape[-1],),
            initializer=keras.initializers.Constant(self.init),
        )

    def call(self, inputs):
        return inputs * ops.cast(self.w, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "init": self.init}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConfigOmitsArgument(Scale):
    def get_config(self):
        return keras.layers.Layer.get_config(self)  # no "init"


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConfigWrongValue(Scale):
    def get_config(self):
        return {**keras.layers.Layer.get_config(self), "init": 2.0}


@keras.saving.register_keras_serializable(package=PACKAGE)
class WrongComputeOutputShape(Scale):
    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CallChangesShape(Scale):
    """compute_output_shape says "same", but call drops the last channel."""

    def call(self, inputs):
        return super().call(inputs)[..., :-1]

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package=PACKAGE)
class WeightInCall(keras.layers.Layer):
    """Creates its weight lazily in call, not in build."""

    def build(self, input_shape):
        pass

    def call(self, inputs):
        if not hasattr(self, "w"):
            self.w = self.add_weight(shape=(inputs.shape[-1],), initializer="ones")
        return inputs * self.w

    def compute_output_shape(self, input_shape):
        return input_shape


class Unregistered(Scale):
    """Not registered: deserialization cannot find it by name."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class ExtraSeedGenerator(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.first = keras.random.SeedGenerator(1)
        self.second = keras.random.SeedGenerator(2)

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class ForcesFloat32(Scale):
    """Ignores the compute dtype: returns float32 under mixed precision."""

    def call(self, inputs):
        return ops.cast(inputs, "float32") * ops.cast(self.w, "float32")


@keras.saving.register_keras_serializable(package=PACKAGE)
class Float16Weight(Scale):
    """Creates its variable in the compute dtype instead of float32."""

    def build(self, input_shape):
        self.w = self.add_weight(
            shape=(input_shape[-1],), initializer="ones", dtype=self.compute_dtype
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class InfWhenTraining(Scale):
    """Finite at inference, infinite in training: the fit step must fail."""

    def call(self, inputs, training=None):
        outputs = super().call(inputs)
        if training:
            outputs = outputs + float("inf")
        return outputs


@keras.saving.register_keras_serializable(package=PACKAGE)
class ZeroGradient(Scale):
    """Outputs zeros: every gradient is 0 and one step changes no weight."""

    def call(self, inputs):
        return super().call(inputs) * 0.0


@keras.saving.register_keras_serializable(package=PACKAGE)
class NoJit(Scale):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_jit = False


@keras.saving.register_keras_serializable(package=PACKAGE)
class ForgetsState(keras.layers.Layer):
    """Adds an offset drawn in __init__ that is neither saved nor configured."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.offset = float(np.random.default_rng().uniform(1.0, 2.0))

    def call(self, inputs):
        return inputs + self.offset

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package=PACKAGE)
class GatherScaled(keras.layers.Layer):
    """Two inputs (float values, int32 indices), two outputs (float, int32)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.gain = keras.layers.Dense(1, dtype=self.dtype_policy, name="gain")

    def build(self, input_shape):
        _, indices_shape = input_shape
        self.gain.build(indices_shape)

    def call(self, inputs):
        values, indices = inputs
        picked = ops.take_along_axis(values, indices, axis=-1)
        return self.gain(picked), indices * 2

    def compute_output_shape(self, input_shape):
        values_shape, indices_shape = input_shape
        return (*indices_shape[:-1], 1), tuple(indices_shape)

    def compute_output_spec(self, inputs):
        values, indices = inputs
        values_shape, indices_shape = self.compute_output_shape([values.shape, indices.shape])
        return (
            keras.KerasTensor(values_shape, dtype=self.compute_dtype),
            keras.KerasTensor(indices_shape, dtype=indices.dtype),
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class GatherScaledNoSpec(GatherScaled):
    compute_output_spec = keras.layers.Layer.compute_output_spec


@keras.saving.register_keras_serializable(package=PACKAGE)
class NoComputeOutputShape(keras.layers.Layer):
    def call(self, inputs):
        return inputs * 2.0


@keras.saving.register_keras_serializable(package=PACKAGE)
class TwoArgumentAdd(keras.layers.Layer):
    """Takes two positional inputs: `layer(a, b)`."""

    def call(self, a, b):
        return a + b

    def compute_output_shape(self, a_shape, b_shape):
        return a_shape


# --------------------------------------------------------------------------
# Correct layers pass, with every check on
# --------------------------------------------------------------------------


def test_correct_layer_passes_all_checks():
    layer = run_layer_test(
        Scale,
        {"init": 3.0},
        (2, 3, 4),
        expected_output_shape=(2, 3, 4),
        expected_output_dtype="float32",
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=0,
        expected_num_seed_generators=0,
    )
    assert layer.built and tuple(layer.w.shape) == (4,)


def test_multi_input_int_indices_and_multi_output_pass():
    values = np.arange(24, dtype="float32").reshape(2, 3, 4)
    indices = np.array([[[1], [0], [3]], [[2], [2], [0]]], dtype="int32")
    run_layer_test(
        GatherScaled,
        {},
        input_data=[values, indices],
        expected_output_shape=[(2, 3, 1), (2, 3, 1)],
        expected_output_dtype=["float32", "int32"],
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
        run_mixed_precision_check=False,
    )


def test_multi_input_with_random_int_data_and_mixed_precision():
    run_layer_test(
        GatherScaled,
        {},
        [(2, 3, 4), (2, 3, 1)],
        input_dtype=["float32", "int32"],
        expected_output_shape=[(2, 3, 1), (2, 3, 1)],
        expected_output_dtype=["float32", "int32"],
        run_training_check=False,
        run_saving_check=False,
    )


def test_two_positional_inputs_are_passed_separately():
    run_layer_test(
        TwoArgumentAdd,
        {},
        [(2, 3), (2, 3)],
        expected_output_shape=(2, 3),
        expected_num_trainable_weights=0,
        run_mixed_precision_check=False,
    )


# --------------------------------------------------------------------------
# Broken layers fail, with a message naming the check
# --------------------------------------------------------------------------


def test_config_omitting_an_argument_fails():
    with pytest.raises(AssertionError, match=r"get_config.*omits.*init"):
        run_layer_test(ConfigOmitsArgument, {"init": 3.0}, (2, 4), **FAST)


def test_config_with_a_wrong_value_fails():
    with pytest.raises(AssertionError, match=r"get_config\(\)\['init'\]=2.0"):
        run_layer_test(ConfigWrongValue, {"init": 3.0}, (2, 4), **FAST)


def test_unregistered_layer_fails_the_json_round_trip():
    with pytest.raises(AssertionError, match="JSON serialization"):
        run_layer_test(Unregistered, {"init": 3.0}, (2, 4), **FAST)


def test_wrong_compute_output_shape_fails():
    with pytest.raises(AssertionError, match="compute_output_shape"):
        run_layer_test(WrongComputeOutputShape, {}, (2, 4), **FAST)


def test_call_shape_differing_from_compute_output_shape_fails():
    with pytest.raises(AssertionError, match="eager call vs compute_output_shape"):
        run_layer_test(CallChangesShape, {}, (2, 4), **FAST)


def test_wrong_expected_output_shape_fails():
    with pytest.raises(AssertionError, match="expected_output_shape"):
        run_layer_test(Scale, {}, (2, 4), expected_output_shape=(2, 5), **FAST)


def test_wrong_expected_output_dtype_fails():
    with pytest.raises(AssertionError, match="expected_output_dtype"):
        run_layer_test(Scale, {}, (2, 4), expected_output_dtype="float16", **FAST)


def test_wrong_expected_weight_count_fails():
    with pytest.raises(AssertionError, match=r"\[Scale: build\].*trainable weights"):
        run_layer_test(Scale, {}, (2, 4), expected_num_trainable_weights=2, **FAST)
    with pytest.raises(AssertionError, match="non-trainable weights"):
        run_layer_test(Scale, {}, (2, 4), expected_num_non_trainable_weights=1, **FAST)


def test_layer_raising_in_call_fails_the_eager_call_check():
    # Keras refuses new weights in a built layer's call: reported, not crashed.
    with pytest.raises(AssertionError, match=r"\[WeightInCall: eager call\]"):
        run_layer_test(WeightInCall, {}, (2, 4), **FAST)


def test_int_output_without_compute_output_spec_fails():
    # compute_output_shape alone makes every symbolic output float32.
    values = np.ones((2, 3, 4), "float32")
    indices = np.zeros((2, 3, 1), "int32")
    with pytest.raises(AssertionError, match="eager dtype vs symbolic dtype"):
        run_layer_test(GatherScaledNoSpec, {}, input_data=[values, indices], **FAST)


def test_missing_compute_output_shape_fails():
    with pytest.raises(AssertionError, match="compute_output_shape.*raised"):
        run_layer_test(NoComputeOutputShape, {}, (2, 4), **FAST)


def test_seed_generators_are_counted():
    assert count_seed_generators(ExtraSeedGenerator()) == 2
    with pytest.raises(AssertionError, match="2 seed generators, expected 1"):
        run_layer_test(ExtraSeedGenerator, {}, (2, 4), expected_num_seed_generators=1, **FAST)


def test_float32_output_under_mixed_precision_fails_and_policy_is_restored():
    with pytest.raises(AssertionError, match="mixed precision.*dtypes"):
        run_layer_test(
            ForcesFloat32,
            {},
            (2, 4),
            run_training_check=False,
            run_saving_check=False,
        )
    assert keras.config.dtype_policy().name == "float32"


def test_float16_variable_under_mixed_precision_fails():
    with pytest.raises(AssertionError, match=r"mixed precision.*expected float32"):
        run_layer_test(
            Float16Weight,
            {},
            (2, 4),
            run_training_check=False,
            run_saving_check=False,
        )
    assert keras.config.dtype_policy().name == "float32"


def test_non_finite_training_loss_fails():
    with pytest.raises(AssertionError, match=r"training.*not finite"):
        run_layer_test(
            InfWhenTraining,
            {},
            (2, 4),
            run_mixed_precision_check=False,
            run_saving_check=False,
        )


def test_layer_blocking_gradients_fails_the_training_check():
    with pytest.raises(AssertionError, match=r"training.*no trainable weight changed"):
        run_layer_test(
            ZeroGradient,
            {},
            (2, 4),
            run_mixed_precision_check=False,
            run_saving_check=False,
        )


def test_layer_without_xla_support_fails_on_tf_and_jax_trains_on_torch():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, NoJit()(inputs))
    x, y = np.ones((2, 4), "float32"), np.zeros((2, 4), "float32")
    if backend_name() == "torch":
        assert jit_compile_setting() == "auto"
        history = fit_one_step(model, x, y)
        assert len(history.history["loss"]) == 1
    else:
        assert jit_compile_setting() is True
        with pytest.raises(AssertionError, match="jit_compile"):
            fit_one_step(model, x, y)


def test_state_lost_in_saving_fails():
    with pytest.raises(AssertionError, match=r"\.keras save/load.*outputs differ"):
        run_layer_test(
            ForgetsState,
            {},
            (2, 4),
            run_training_check=False,
            run_mixed_precision_check=False,
        )


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def test_fit_one_step_takes_one_sgd_step():
    inputs = keras.Input((2,))
    dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")
    model = keras.Model(inputs, dense(inputs))
    x = np.array([[1.0, 2.0]], "float32")
    y = np.array([[1.0]], "float32")
    history = fit_one_step(model, x, y)
    # mse gradient at w=0: d/dw (w.x - 1)^2 = -2 x; SGD lr 0.01.
    assert_allclose(dense.kernel, [[0.02], [0.04]], atol=1e-6)
    assert_allclose(history.history["loss"][0], 1.0)


def test_assert_allclose_converts_tensors_and_fails_on_mismatch():
    assert_allclose(ops.ones((2, 2)), np.ones((2, 2)))
    assert_allclose([ops.zeros((1,)), ops.ones((1,))], [np.zeros(1), np.ones(1)])
    with pytest.raises(AssertionError):
        assert_allclose(ops.ones((2,)), np.array([1.0, 1.001]))
    with pytest.raises(AssertionError):
        assert_allclose(ops.ones((2,)), np.ones((3,)))


def test_value_and_gradient_of_a_square():
    x = np.array([[1.0, -2.0, 3.0]], "float32")
    value, grad = value_and_gradient(lambda t: ops.square(t) * 0.5, x)
    assert_allclose(value, 0.5 * x**2)
    assert_allclose(grad, x)


def test_backend_name_is_the_keras_backend():
    assert backend_name() in ("tensorflow", "jax", "torch")
    assert backend_name() == keras.backend.backend()


def test_conftest_resets_global_state_between_tests(pytester):
    """tests/conftest.py's autouse fixture: a test that leaves mixed precision,
    channels_first and another seed behind does not pass them on. Both tests
    run in one inner session, in this order, whatever the outer order or
    xdist worker; the second fails if the fixture stops resetting."""
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(
        test_state="""
import keras
import numpy as np


def draw():
    return keras.ops.convert_to_numpy(keras.random.uniform((4,), seed=None))


def test_changes_global_state():
    keras.config.set_dtype_policy("mixed_float16")
    keras.config.set_image_data_format("channels_first")
    keras.utils.set_random_seed(123)


def test_starts_from_the_default_state():
    assert keras.config.dtype_policy().name == "float32"
    assert keras.config.image_data_format() == "channels_last"
    first = draw()
    keras.utils.set_random_seed(0)
    np.testing.assert_array_equal(first, draw())
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert keras.config.dtype_policy().name == "float32"
    assert keras.config.image_data_format() == "channels_last"
