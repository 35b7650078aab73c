"""Shared test harness of keras_cvlec: what Keras's `run_layer_test` does.

`keras.src.testing` is private, so the tests of this package use this module
instead. Everything here runs unchanged on the TensorFlow, JAX and PyTorch
backends; backend modules (`tensorflow`, `jax`, `torch`) are imported lazily,
only inside the helpers that need them.

Public API (other tests depend on these exact signatures):

    backend_name()
    jit_compile_setting()
    run_layer_test(layer_cls, init_kwargs, input_shape=None, *, input_data=None,
        input_dtype="float32", expected_output_shape=None,
        expected_output_dtype=None, expected_num_trainable_weights=None,
        expected_num_non_trainable_weights=None,
        expected_num_seed_generators=None, run_training_check=True,
        run_mixed_precision_check=True, run_saving_check=True, call_kwargs=None)
    assert_allclose(actual, expected, atol=1e-6, rtol=1e-6)
    fit_one_step(model, inputs, targets, loss="mse")
    value_and_gradient(fn, x)        # extra: backend-dispatching gradient
    count_seed_generators(layer)     # extra: as run_layer_test counts them

Conventions of `run_layer_test`:

- Shapes include the batch dimension and are concrete (`(2, 8, 8, 3)`), unless
  `input_data` is given, in which case `input_shape` (optional) may contain
  `None` dimensions and is only used for the symbolic call.
- Several inputs: `input_shape` is a list/tuple of shape tuples, `input_dtype`
  a single dtype for all of them or a list of dtypes, `input_data` a list of
  arrays. The layer is called as `layer([a, b])`, or as `layer(a, b)` when its
  `call` takes that many required positional arguments;
  `compute_output_shape` accordingly gets a list of shapes or one argument per
  shape.
- Several outputs: `expected_output_shape` is a list of shape tuples and
  `expected_output_dtype` a list of dtypes (or one dtype for all). A `None`
  dimension in an expected shape matches any size.
- Weight and seed-generator counts that are not given are taken from an eager
  call of the layer; the build-only and the symbolic-call layers must then
  agree with it (a layer that creates weights in `call` fails).
- Every failure is an `AssertionError` whose message starts with
  `[<LayerName>: <check name>]`.
"""

import inspect
import json
import math
import os
import tempfile

import keras
import numpy as np
from keras import ops

MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")


# --------------------------------------------------------------------------
# Small public helpers
# --------------------------------------------------------------------------


def backend_name():
    """The name of the Keras backend: "tensorflow", "jax" or "torch"."""
    return keras.backend.backend()


def jit_compile_setting():
    """`jit_compile` for `Model.compile`: True (XLA) on TF and JAX, "auto" on torch.

    The design requires every layer to train under XLA on TF and JAX; on torch
    "auto" means eager execution (`torch.compile` is not required).
    """
    return "auto" if backend_name() == "torch" else True


def to_numpy(x):
    """A numpy array (or a list of them) from keras/backend tensors or arrays."""
    if isinstance(x, (list, tuple)):
        return [to_numpy(item) for item in x]
    if isinstance(x, dict):
        return {key: to_numpy(value) for key, value in x.items()}
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, keras.Variable):
        x = x.value
    if backend_name() == "torch":
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu()
            if x.dtype == torch.bfloat16:
                x = x.float()
            return x.numpy()
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return np.asarray(ops.convert_to_numpy(x))
    return np.asarray(x)


def assert_allclose(actual, expected, atol=1e-6, rtol=1e-6, *, msg=""):
    """`np.testing.assert_allclose` after converting tensors to numpy.

    Lists/tuples are compared element by element. Low-precision floats
    (float16, bfloat16) are compared as float32.
    """
    actual, expected = to_numpy(actual), to_numpy(expected)
    if isinstance(actual, list) != isinstance(expected, list):
        # One side is a nested Python list of numbers (or of arrays): stack it.
        if isinstance(actual, list):
            actual = np.asarray(actual)
        else:
            expected = np.asarray(expected)
    if isinstance(actual, list) or isinstance(expected, list):
        if not isinstance(actual, list) or not isinstance(expected, list):
            raise AssertionError(
                f"{msg} structure differs: {type(actual).__name__} vs {type(expected).__name__}"
            )
        if len(actual) != len(expected):
            raise AssertionError(f"{msg} length differs: {len(actual)} vs {len(expected)}")
        for index, (a, e) in enumerate(zip(actual, expected)):
            assert_allclose(a, e, atol=atol, rtol=rtol, msg=f"{msg} [item {index}]")
        return
    np.testing.assert_allclose(
        _as_comparable(actual),
        _as_comparable(expected),
        atol=atol,
        rtol=rtol,
        err_msg=msg,
    )


def _as_comparable(array):
    array = np.asarray(array)
    if array.dtype.kind == "f" and array.dtype.itemsize < 4 or (array.dtype.kind not in "biufc"):
        # float16 and bfloat16 (an ml_dtypes "V" kind on some backends).
        return array.astype("float32")
    return array


def count_seed_generators(layer):
    """Distinct `keras.random.SeedGenerator`s tracked by `layer` and its sublayers."""
    seen = {}
    for sublayer in layer._flatten_layers(include_self=True, recursive=True):
        for generator in sublayer._seed_generators:
            seen[id(generator)] = generator
    return len(seen)


def fit_one_step(model, inputs, targets, loss="mse", jit_compile=None):
    """Compile with SGD, fit one step, return history.

    One step: the whole batch (the first dimension of the first input) is one
    batch. `jit_compile` defaults to `jit_compile_setting()` (XLA on TF and
    JAX); model-level tests pass "auto" (no XLA on TF's CPU), as XLA compiles
    a whole model for tens of seconds and every layer is tested under XLA on
    its own. Asserts that the loss is finite, that XLA was not silently
    switched off when asked for (a layer with `supports_jit=False` would do
    that), and that the trainable weights stay finite.
    """
    jit_compile = jit_compile_setting() if jit_compile is None else jit_compile
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01),
        loss=loss,
        jit_compile=jit_compile,
    )
    if jit_compile is True and model.jit_compile is not True:
        raise AssertionError(
            "[fit_one_step] the model does not support jit_compile=True on "
            f"{backend_name()}: some layer has supports_jit=False"
        )
    if isinstance(inputs, dict):
        first = next(iter(inputs.values()))
    elif isinstance(inputs, (list, tuple)):
        first = inputs[0]
    else:
        first = inputs
    batch_size = int(np.shape(to_numpy(first))[0])
    history = model.fit(inputs, targets, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    losses = history.history["loss"]
    if len(losses) != 1 or not np.isfinite(losses[-1]):
        raise AssertionError(f"[fit_one_step] loss is not finite: {losses}")
    for weight in model.trainable_weights:
        if not np.all(np.isfinite(to_numpy(weight))):
            raise AssertionError(
                f"[fit_one_step] weight {weight.path} is not finite after one step"
            )
    return history


def randomize_weights(model, seed=0):
    """Sets every weight of `model` to random values that keep a deep conv
    net's activations of order one (so a 1e-4 tolerance means something):
    kernels N(0, 1/fan_in), BN/LN scales and moving variances U(0.5, 1.5),
    everything else (biases, offsets, moving means) N(0, 0.1)."""
    rng = np.random.default_rng(seed)
    values = []
    for weight in model.weights:
        shape = tuple(weight.shape)
        if weight.name in ("gamma", "moving_variance"):
            values.append(rng.uniform(0.5, 1.5, shape))
        elif weight.name == "kernel":
            fan_in = int(np.prod(shape[:-1]))
            values.append(rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape))
        else:
            values.append(rng.normal(0.0, 0.1, shape))
    model.set_weights([value.astype("float32") for value in values])


def value_and_gradient(fn, x):
    """`(fn(x), d sum(fn(x)) / dx)` as numpy arrays, on the current backend.

    `fn` maps one tensor to one tensor with keras ops/layers. Forward value and
    gradient come from the same call, so random draws inside `fn` (e.g. a
    dropout mask) are the same in both. Uses `tf.GradientTape`,
    `jax.value_and_grad` (jitted: one compile a call instead of one an op,
    tests/layers on JAX 101 -> 81 s; inside a `keras.StatelessScope`, so
    seed-generator updates do not leak tracers) or `torch.autograd`.
    """
    x = np.asarray(x)
    backend = backend_name()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            total = ops.sum(y)
        grad = tape.gradient(total, x)
        return to_numpy(y), to_numpy(grad)
    if backend == "jax":
        import jax

        def total_fn(value):
            y = fn(value)
            return ops.sum(y), y

        with keras.StatelessScope():
            (_, y), grad = jax.jit(jax.value_and_grad(total_fn, has_aux=True))(jax.numpy.asarray(x))
        return to_numpy(y), to_numpy(grad)
    if backend == "torch":
        import torch

        x = torch.tensor(x, requires_grad=True)
        y = fn(x)
        total = y.sum()
        (grad,) = torch.autograd.grad(total, x)
        return to_numpy(y), to_numpy(grad)
    raise NotImplementedError(f"value_and_gradient: backend {backend}")


# --------------------------------------------------------------------------
# run_layer_test
# --------------------------------------------------------------------------


def _is_shape(value):
    return isinstance(value, (tuple, list)) and all(
        dim is None or isinstance(dim, (int, np.integer)) for dim in value
    )


def _as_shape_list(shape_or_shapes):
    """(shapes as a list of tuples, whether it was a structure of several)."""
    if _is_shape(shape_or_shapes):
        return [tuple(shape_or_shapes)], False
    return [tuple(shape) for shape in shape_or_shapes], True


def _dtype_name(dtype):
    return keras.backend.standardize_dtype(dtype)


def _is_float(dtype):
    return "float" in _dtype_name(dtype)


def _flatten_outputs(outputs):
    if isinstance(outputs, dict):
        return [outputs[key] for key in sorted(outputs)]
    if isinstance(outputs, (list, tuple)):
        return list(outputs)
    return [outputs]


class _Checker:
    """Formats failure messages: `[LayerName: check] details`."""

    def __init__(self, layer_cls):
        self.name = layer_cls.__name__
        self.check = "setup"

    def fail(self, message):
        raise AssertionError(f"[{self.name}: {self.check}] {message}")

    def true(self, condition, message):
        if not condition:
            self.fail(message)


@keras.saving.register_keras_serializable(package="keras_cvlec_tests")
class _TrainableScale(keras.layers.Layer):
    """A scalar trainable scale (init 1): makes a float input trainable so the
    training check back-propagates through the layer under test even when
    the layer has no weights of its own."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones", trainable=True)

    def call(self, inputs):
        return inputs * ops.cast(self.scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape=None,
    *,
    input_data=None,
    input_dtype="float32",
    expected_output_shape=None,
    expected_output_dtype=None,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    expected_num_seed_generators=None,
    run_training_check=True,
    run_mixed_precision_check=True,
    run_saving_check=True,
    call_kwargs=None,
):
    """Runs the standard checks of a layer; raises AssertionError on failure.

    Checks, in order: config round trip (`get_config`/`from_config`, every
    constructor argument in the config), JSON round trip
    (`serialize_keras_object` + `json` + `deserialize_keras_object`), build
    (weight and seed-generator counts), symbolic call on `keras.KerasTensor`s
    (shapes vs `compute_output_shape` and `expected_output_shape`), eager call
    (shapes, dtypes), training (one `fit` step of a functional model, XLA on
    TF/JAX), mixed precision (`mixed_float16`, `mixed_bfloat16`: float32
    variables, compute-dtype outputs, close to float32) and `.keras`
    save/load (equal outputs). See the module docstring for conventions.

    Returns the layer of the eager call.
    """
    check = _Checker(layer_cls)
    init_kwargs = dict(init_kwargs or {})
    call_kwargs = dict(call_kwargs or {})
    if input_shape is None and input_data is None:
        raise ValueError("run_layer_test needs `input_shape` or `input_data`.")

    # ---- inputs -----------------------------------------------------------
    if input_data is not None:
        multi_input = isinstance(input_data, (list, tuple))
        arrays = [to_numpy(a) for a in (input_data if multi_input else [input_data])]
        data_shapes = [a.shape for a in arrays]
        if input_shape is not None:
            symbolic_shapes, multi_shape = _as_shape_list(input_shape)
            check.check = "input_shape vs input_data"
            check.true(
                multi_shape == multi_input and len(symbolic_shapes) == len(arrays),
                f"input_shape={input_shape} does not match {len(arrays)} input arrays",
            )
            for shape, data_shape in zip(symbolic_shapes, data_shapes):
                check.true(
                    len(shape) == len(data_shape)
                    and all(s is None or s == d for s, d in zip(shape, data_shape)),
                    f"input_shape {shape} does not match data shape {data_shape}",
                )
        else:
            symbolic_shapes = [tuple(s) for s in data_shapes]
        dtypes = [_dtype_name(a.dtype) for a in arrays]
    else:
        symbolic_shapes, multi_input = _as_shape_list(input_shape)
        if isinstance(input_dtype, (list, tuple)):
            dtypes = [_dtype_name(d) for d in input_dtype]
            if len(dtypes) != len(symbolic_shapes):
                raise ValueError(
                    f"input_dtype={input_dtype} does not match input_shape={input_shape}"
                )
        else:
            dtypes = [_dtype_name(input_dtype)] * len(symbolic_shapes)
        rng = np.random.default_rng(0)
        arrays = []
        for shape, dtype in zip(symbolic_shapes, dtypes):
            if any(dim is None for dim in shape):
                raise ValueError(f"input_shape must be concrete without input_data: {shape}")
            if _is_float(dtype):
                arrays.append(rng.standard_normal(shape).astype("float32"))
            elif dtype == "bool":
                arrays.append(rng.integers(0, 2, shape).astype("bool"))
            else:
                arrays.append(rng.integers(0, 4, shape).astype(dtype))
        if dtypes and any(_is_float(d) and d != "float32" for d in dtypes):
            arrays = [a.astype(d) if _is_float(d) else a for a, d in zip(arrays, dtypes)]
    concrete_shapes = [tuple(a.shape) for a in arrays]
    splat = multi_input and _call_takes_positional(layer_cls, len(arrays))

    def as_inputs(items):
        return list(items) if multi_input else items[0]

    def call_layer(layer, items, **extra):
        kwargs = {**call_kwargs, **extra}
        if splat:
            return layer(*items, **kwargs)
        return layer(as_inputs(items), **kwargs)

    def output_shape_of(layer, shapes):
        try:
            if splat:
                return layer.compute_output_shape(*shapes)
            return layer.compute_output_shape(as_inputs(shapes))
        except Exception as error:  # noqa: BLE001
            check.fail(
                f"compute_output_shape({as_inputs(shapes)}) raised "
                f"{type(error).__name__}: {error} (every layer must implement it)"
            )

    def build_layer(layer, shapes):
        if not splat:
            return layer.build(as_inputs(shapes))
        # Several positional call arguments: build like Keras does, with
        # `<argument>_shape` keywords, or positionally, or (default build) once.
        names = _required_call_args(layer_cls)[: len(shapes)]
        build_args = inspect.signature(layer.build).parameters
        if all(f"{name}_shape" in build_args for name in names):
            return layer.build(**{f"{name}_shape": shape for name, shape in zip(names, shapes)})
        if len(build_args) >= len(shapes):
            return layer.build(*shapes)
        return layer.build(shapes[0])

    def eager_inputs():
        return [ops.convert_to_tensor(a) for a in arrays]

    def symbolic_inputs():
        return [
            keras.KerasTensor(shape, dtype=dtype) for shape, dtype in zip(symbolic_shapes, dtypes)
        ]

    # expected outputs as lists
    expected_shapes = None
    if expected_output_shape is not None:
        expected_shapes, _ = _as_shape_list(expected_output_shape)
    expected_dtypes = None
    if expected_output_dtype is not None:
        if isinstance(expected_output_dtype, (list, tuple)):
            expected_dtypes = [_dtype_name(d) for d in expected_output_dtype]
        else:
            expected_dtypes = _dtype_name(expected_output_dtype)

    def check_shapes(outputs, reference, what):
        outputs = _flatten_outputs(outputs)
        got = [tuple(o.shape) for o in outputs]
        check.true(
            len(got) == len(reference),
            f"{len(got)} outputs with shapes {got}, expected {len(reference)} "
            f"({what}: {reference})",
        )
        for index, (shape, ref) in enumerate(zip(got, reference)):
            ok = len(shape) == len(ref) and all(r is None or s == r for s, r in zip(shape, ref))
            check.true(ok, f"output {index} has shape {shape}, {what} is {ref}")

    def check_dtypes(outputs, reference, what):
        outputs = _flatten_outputs(outputs)
        if isinstance(reference, str):
            reference = [reference] * len(outputs)
        got = [_dtype_name(o.dtype) for o in outputs]
        check.true(got == list(reference), f"output dtypes {got}, {what} is {list(reference)}")

    # ---- 1. config round trip --------------------------------------------
    check.check = "get_config/from_config round trip"
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    check.true(isinstance(config, dict), f"get_config returned {type(config)}")
    missing = [name for name in _constructor_args(layer_cls) if name not in config]
    check.true(
        not missing,
        f"get_config() omits constructor arguments {missing}; config keys: {sorted(config)}",
    )
    for key, value in init_kwargs.items():
        check.true(key in config, f"get_config() omits init argument {key!r}")
        if isinstance(value, (bool, int, float, str)) and not _scalar_matches(config[key], value):
            check.fail(
                f"get_config()[{key!r}]={config[key]!r} differs from the "
                f"constructor argument {key}={value!r}"
            )
    try:
        revived = layer_cls.from_config(config)
    except Exception as error:  # noqa: BLE001 - reported as a failed check
        check.fail(f"from_config(get_config()) raised {error!r}")
    revived_config = revived.get_config()
    check.true(
        _config_equal(config, revived_config),
        f"config changes in the round trip:\n{config}\n!=\n{revived_config}",
    )

    # ---- 2. JSON round trip ----------------------------------------------
    check.check = "JSON serialization round trip"
    try:
        serialized = keras.saving.serialize_keras_object(layer)
        text = json.dumps(serialized)
        revived = keras.saving.deserialize_keras_object(json.loads(text))
    except Exception as error:  # noqa: BLE001
        check.fail(f"serialize/json/deserialize raised {error!r}")
    check.true(
        type(revived) is layer_cls,
        f"deserialized a {type(revived).__name__}, not a {layer_cls.__name__} "
        "(is the class registered with register_keras_serializable?)",
    )
    revived_config = revived.get_config()
    check.true(
        _config_equal(_json_normalize(config), _json_normalize(revived_config)),
        f"config changes in the JSON round trip:\n{config}\n!=\n{revived_config}",
    )

    # ---- reference counts from an eager call -------------------------------
    check.check = "eager call"
    try:
        eager_layer = layer_cls(**init_kwargs)
        eager_outputs = call_layer(eager_layer, eager_inputs())
    except Exception as error:  # noqa: BLE001
        check.fail(f"calling the layer on {concrete_shapes} raised {error!r}")
    counts_from_call = (
        len(eager_layer.trainable_weights),
        len(eager_layer.non_trainable_weights),
        count_seed_generators(eager_layer),
    )
    expected_counts = (
        expected_num_trainable_weights,
        expected_num_non_trainable_weights,
        expected_num_seed_generators,
    )
    expected_counts = tuple(
        given if given is not None else from_call
        for given, from_call in zip(expected_counts, counts_from_call)
    )

    def check_counts(layer, when):
        got = (
            len(layer.trainable_weights),
            len(layer.non_trainable_weights),
            count_seed_generators(layer),
        )
        labels = ("trainable weights", "non-trainable weights", "seed generators")
        for label, number, expected in zip(labels, got, expected_counts):
            check.true(
                number == expected,
                f"{when}: {number} {label}, expected {expected} "
                f"(weights: {[w.path for w in layer.weights]})",
            )
        if backend_name() == "torch" and hasattr(layer, "torch_params"):
            check.true(
                len(layer.torch_params) == sum(expected_counts),
                f"{when}: {len(layer.torch_params)} torch_params, expected "
                f"{sum(expected_counts)} (weights + seed generator states): a "
                "variable is not tracked by the torch module",
            )

    # ---- 3. build ----------------------------------------------------------
    check.check = "build"
    layer = layer_cls(**init_kwargs)
    try:
        build_layer(layer, concrete_shapes)
    except Exception as error:  # noqa: BLE001
        check.fail(f"build({as_inputs(concrete_shapes)}) raised {error!r}")
    check.true(layer.built, "layer.built is False after build()")
    check_counts(layer, "after build()")
    check.check = "eager call"
    check_counts(eager_layer, "after an eager call")

    # ---- 4. symbolic call --------------------------------------------------
    check.check = "symbolic call"
    layer = layer_cls(**init_kwargs)
    try:
        symbolic_outputs = call_layer(layer, symbolic_inputs())
    except Exception as error:  # noqa: BLE001
        check.fail(f"calling on KerasTensors {symbolic_shapes} raised {error!r}")
    check_counts(layer, "after a symbolic call")
    computed, _ = _as_shape_list(output_shape_of(layer, symbolic_shapes))
    check.check = "symbolic call vs compute_output_shape"
    got = [tuple(o.shape) for o in _flatten_outputs(symbolic_outputs)]
    check.true(
        got == computed,
        f"symbolic output shapes {got} != compute_output_shape {computed} "
        f"for inputs {symbolic_shapes}",
    )
    if expected_shapes is not None:
        check.check = "symbolic call vs expected_output_shape"
        check_shapes(symbolic_outputs, expected_shapes, "expected_output_shape")
    symbolic_dtypes = [_dtype_name(o.dtype) for o in _flatten_outputs(symbolic_outputs)]
    if all(shape and shape[0] is not None for shape in symbolic_shapes):
        # The same with an unknown batch size, as in a functional model.
        check.check = "symbolic call with batch None vs compute_output_shape"
        unbatched = [(None, *shape[1:]) for shape in symbolic_shapes]
        layer = layer_cls(**init_kwargs)
        try:
            outputs = call_layer(
                layer,
                [keras.KerasTensor(s, dtype=d) for s, d in zip(unbatched, dtypes)],
            )
        except Exception as error:  # noqa: BLE001
            check.fail(f"calling on KerasTensors {unbatched} raised {error!r}")
        computed, _ = _as_shape_list(output_shape_of(layer, unbatched))
        got = [tuple(o.shape) for o in _flatten_outputs(outputs)]
        check.true(
            got == computed,
            f"symbolic output shapes {got} != compute_output_shape {computed} "
            f"for inputs {unbatched}",
        )

    # ---- 5. eager call -----------------------------------------------------
    check.check = "eager call vs compute_output_shape"
    computed, _ = _as_shape_list(output_shape_of(eager_layer, concrete_shapes))
    check_shapes(eager_outputs, computed, "compute_output_shape")
    if expected_shapes is not None:
        check.check = "eager call vs expected_output_shape"
        check_shapes(eager_outputs, expected_shapes, "expected_output_shape")
    check.check = "eager dtype vs symbolic dtype"
    check_dtypes(eager_outputs, symbolic_dtypes, "the symbolic call's dtype")
    if expected_dtypes is not None:
        check.check = "eager call vs expected_output_dtype"
        check_dtypes(eager_outputs, expected_dtypes, "expected_output_dtype")
    float_outputs = [index for index, dtype in enumerate(symbolic_dtypes) if _is_float(dtype)]
    check.check = "eager call: finite outputs"
    for index in float_outputs:
        values = _as_comparable(to_numpy(_flatten_outputs(eager_outputs)[index]))
        check.true(np.all(np.isfinite(values)), f"output {index} is not finite")

    # ---- 6. training -------------------------------------------------------
    if run_training_check and float_outputs:
        check.check = f"training (fit, jit_compile={jit_compile_setting()!r})"
        layer = layer_cls(**init_kwargs)
        model_inputs = [
            keras.Input(shape=shape[1:], batch_size=shape[0], dtype=dtype)
            for shape, dtype in zip(concrete_shapes, dtypes)
        ]
        layer_inputs = [
            _TrainableScale(name=f"trainable_input_{i}")(x) if _is_float(d) else x
            for i, (x, d) in enumerate(zip(model_inputs, dtypes))
        ]
        outputs = _flatten_outputs(call_layer(layer, layer_inputs))
        outputs = [outputs[index] for index in float_outputs]
        model = keras.Model(as_inputs(model_inputs), outputs if len(outputs) > 1 else outputs[0])
        rng = np.random.default_rng(1)
        targets = [rng.standard_normal(tuple(o.shape)).astype("float32") for o in outputs]
        before = [to_numpy(w).copy() for w in model.trainable_weights]
        try:
            fit_one_step(model, as_inputs(arrays), targets if len(targets) > 1 else targets[0])
        except AssertionError as error:
            check.fail(str(error))
        except Exception as error:  # noqa: BLE001
            check.fail(f"fit raised {type(error).__name__}: {error}")
        changed = [
            not np.array_equal(to_numpy(w), b) for w, b in zip(model.trainable_weights, before)
        ]
        check.true(
            any(changed),
            "no trainable weight changed in one SGD step: no gradient flows "
            "through the layer (weights: "
            f"{[w.path for w in model.trainable_weights]})",
        )

    # ---- 7. mixed precision ------------------------------------------------
    # A seeded layer called with training=True draws different numbers in
    # float32 and float16, so only its dtypes and finiteness are compared.
    random_call = bool(call_kwargs.get("training")) and expected_counts[2] > 0
    if run_mixed_precision_check:
        reference_layer = layer_cls(**init_kwargs)
        reference = _flatten_outputs(call_layer(reference_layer, eager_inputs()))
        for policy in MIXED_POLICIES:
            for how in ("global policy", "dtype argument"):
                check.check = f"mixed precision ({policy}, {how})"
                previous = keras.config.dtype_policy()
                try:
                    if how == "global policy":
                        keras.config.set_dtype_policy(policy)
                        mixed_layer = layer_cls(**init_kwargs)
                    else:
                        mixed_layer = layer_cls(**{**init_kwargs, "dtype": policy})
                    _check_mixed_precision(
                        check,
                        policy,
                        mixed_layer,
                        reference_layer,
                        reference,
                        lambda layer: call_layer(layer, eager_inputs()),
                        lambda layer: call_layer(layer, symbolic_inputs()),
                        symbolic_dtypes,
                        compare_values=not random_call,
                    )
                finally:
                    keras.config.set_dtype_policy(previous)

    # ---- 8. .keras save / load ---------------------------------------------
    if run_saving_check:
        check.check = ".keras save/load"
        layer = layer_cls(**init_kwargs)
        model_inputs = [
            keras.Input(shape=shape[1:], dtype=dtype)
            for shape, dtype in zip(symbolic_shapes, dtypes)
        ]
        outputs = call_layer(layer, model_inputs)
        model = keras.Model(as_inputs(model_inputs), outputs)
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "model.keras")
            try:
                # Saved before the call, so that seed-generator states match.
                model.save(path)
                before = model(as_inputs(eager_inputs()), training=False)
                loaded = keras.saving.load_model(path)
            except Exception as error:  # noqa: BLE001
                check.fail(f"save/load_model raised {error!r}")
        loaded_layer = loaded.get_layer(layer.name)
        check.true(
            type(loaded_layer) is layer_cls,
            f"the loaded layer is a {type(loaded_layer).__name__}",
        )
        check.true(
            _config_equal(
                _json_normalize(loaded_layer.get_config()),
                _json_normalize(layer.get_config()),
            ),
            f"loaded config {loaded_layer.get_config()} != {layer.get_config()}",
        )
        check.true(
            len(loaded.weights) == len(model.weights),
            f"{len(loaded.weights)} weights after loading, {len(model.weights)} before",
        )
        for saved, restored in zip(model.weights, loaded.weights):
            if _is_float(saved.dtype):
                assert_allclose(
                    restored,
                    saved,
                    atol=0,
                    rtol=0,
                    msg=f"[{check.name}: {check.check}] weight {saved.path} changed",
                )
        after = loaded(as_inputs(eager_inputs()), training=False)
        assert_allclose(
            _flatten_outputs(after),
            _flatten_outputs(before),
            atol=1e-5,
            rtol=1e-5,
            msg=f"[{check.name}: {check.check}] outputs differ after loading",
        )
    return eager_layer


def _check_mixed_precision(
    check,
    policy,
    layer,
    reference_layer,
    reference,
    call_eager,
    call_symbolic,
    float32_dtypes,
    compare_values=True,
):
    compute_dtype = keras.DTypePolicy(policy).compute_dtype
    try:
        symbolic = _flatten_outputs(call_symbolic(layer))
    except Exception as error:  # noqa: BLE001
        check.fail(f"symbolic call raised {error!r}")
    layer = type(layer).from_config(layer.get_config())  # fresh, same policy
    try:
        outputs = call_eager(layer)
        # Same weights as the float32 reference, for a numeric comparison.
        layer.set_weights(reference_layer.get_weights())
        outputs = _flatten_outputs(call_eager(layer))
    except Exception as error:  # noqa: BLE001
        check.fail(f"eager call raised {type(error).__name__}: {error}")
    check.true(
        layer.dtype_policy.name == policy,
        f"layer.dtype_policy is {layer.dtype_policy.name}, expected {policy}",
    )
    for weight in layer.weights:
        if "float" in _dtype_name(weight.dtype):
            check.true(
                _dtype_name(weight.dtype) == "float32",
                f"variable {weight.path} is {_dtype_name(weight.dtype)}, expected float32",
            )
    expected = [compute_dtype if _is_float(d) else d for d in float32_dtypes]
    got_symbolic = [_dtype_name(o.dtype) for o in symbolic]
    check.true(
        got_symbolic == expected,
        f"symbolic output dtypes {got_symbolic}, expected {expected}",
    )
    got = [_dtype_name(o.dtype) for o in outputs]
    check.true(got == expected, f"eager output dtypes {got}, expected {expected}")
    for index, (output, ref) in enumerate(zip(outputs, reference)):
        output, ref = _as_comparable(to_numpy(output)), _as_comparable(to_numpy(ref))
        if not _is_float(expected[index]):
            continue
        check.true(np.all(np.isfinite(output)), f"output {index} is not finite")
        if not compare_values:
            continue
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        error = float(np.max(np.abs(output - ref))) if ref.size else 0.0
        check.true(
            error <= 0.05 * (scale + 1.0),
            f"output {index} differs from float32 by {error} (max |float32| "
            f"{scale}) with the same weights",
        )


def _scalar_matches(config_value, value):
    """A constructor argument as stored in the config: equal, the same string
    up to case, or a tuple/list repeating it (`strides=2` -> `(2, 2)`)."""
    if isinstance(value, str) and isinstance(config_value, str):
        return config_value.lower() == value.lower()
    if isinstance(config_value, (list, tuple)) and config_value:
        return all(_config_equal(item, value) for item in config_value)
    return _config_equal(config_value, value)


def _constructor_args(layer_cls):
    """Named constructor parameters (not self, *args, **kwargs)."""
    parameters = inspect.signature(layer_cls.__init__).parameters.values()
    return [
        p.name
        for p in parameters
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _required_call_args(layer_cls):
    """Names of the required positional arguments of `layer_cls.call`."""
    parameters = list(inspect.signature(layer_cls.call).parameters.values())[1:]
    return [
        p.name
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.default is p.empty
        and p.name not in ("training", "mask")
    ]


def _call_takes_positional(layer_cls, count):
    """Whether `layer_cls.call` takes `count` required positional inputs."""
    return count > 1 and len(_required_call_args(layer_cls)) >= count


def _json_normalize(value):
    """Tuples become lists, as a JSON round trip does."""
    return json.loads(json.dumps(value, default=repr))


def _config_equal(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_config_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(_config_equal(x, y) for x, y in zip(a, b))
        )
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, int) and isinstance(b, float) and not isinstance(a, bool):
        return a == b
    return type(a) is type(b) and a == b
