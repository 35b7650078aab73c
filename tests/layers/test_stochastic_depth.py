"""StochasticDepth: per-sample drop of a residual branch, seeded, XLA-safe."""

import keras
import numpy as np
import pytest

from keras_cvlec.layers import StochasticDepth
from tests.harness import (
    assert_allclose,
    backend_name,
    fit_one_step,
    run_layer_test,
    to_numpy,
    value_and_gradient,
)


def positive_inputs(shape, seed=0):
    """Values in [1, 2): a dropped element (0) can't be mistaken for a kept one."""
    return np.random.default_rng(seed).uniform(1.0, 2.0, shape).astype("float32")


def kept_samples(outputs):
    """Per-sample bool: kept (every element non-zero) or dropped (all zero).

    Asserts that no sample is partly dropped: the layer drops whole samples.
    """
    flat = to_numpy(outputs).reshape(len(outputs), -1)
    nonzero = flat != 0
    kept = nonzero.all(axis=1)
    dropped = (~nonzero).all(axis=1)
    assert np.all(kept | dropped), "a sample is only partly dropped"
    return kept


def test_layer_contract_inference():
    run_layer_test(
        StochasticDepth,
        {"rate": 0.3, "seed": 1},
        (4, 3, 3, 2),
        expected_output_shape=(4, 3, 3, 2),
        expected_output_dtype="float32",
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        expected_num_seed_generators=1,
    )


def test_layer_contract_training():
    run_layer_test(
        StochasticDepth,
        {"rate": 0.5, "seed": 7},
        (6, 5),
        call_kwargs={"training": True},
        expected_output_shape=(6, 5),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        expected_num_seed_generators=1,
    )


def test_keep_fraction_scale_and_whole_sample_drop():
    rate, batch = 0.3, 20000
    x = positive_inputs((batch, 2, 3))
    layer = StochasticDepth(rate=rate, seed=3)
    y = to_numpy(layer(x, training=True))
    kept = kept_samples(y)
    assert abs(kept.mean() - 0.7) < 0.02, kept.mean()
    # Kept samples are scaled by exactly 1 / (1 - rate), dropped ones are 0.
    scale = np.float32(1.0) / np.float32(1.0 - rate)
    assert_allclose(y[kept], x[kept] * scale, atol=0, rtol=1e-6)
    assert np.all(y[~kept] == 0.0)
    # Unbiased: the mean over the batch stays close to the input mean.
    assert abs(y.mean() / x.mean() - 1.0) < 0.03


@pytest.mark.parametrize("rank_shape", [(4000,), (4000, 5), (4000, 2, 2, 2)])
def test_drops_per_sample_for_any_rank(rank_shape):
    x = positive_inputs(rank_shape)
    y = to_numpy(StochasticDepth(rate=0.5, seed=11)(x, training=True))
    kept = kept_samples(y.reshape(rank_shape[0], -1))
    assert abs(kept.mean() - 0.5) < 0.04, kept.mean()


def test_identity_at_inference_and_for_rate_zero():
    x = positive_inputs((16, 3, 3, 2))
    layer = StochasticDepth(rate=0.5, seed=0)
    assert np.array_equal(to_numpy(layer(x, training=False)), x)
    assert np.array_equal(to_numpy(layer(x)), x)  # training=None
    assert np.array_equal(to_numpy(StochasticDepth(rate=0.0)(x, training=True)), x)


def test_seeded_draws_are_reproducible():
    x = positive_inputs((64, 4))
    first = to_numpy(StochasticDepth(rate=0.5, seed=42)(x, training=True))
    second = to_numpy(StochasticDepth(rate=0.5, seed=42)(x, training=True))
    other_seed = to_numpy(StochasticDepth(rate=0.5, seed=43)(x, training=True))
    assert np.array_equal(first, second)
    assert not np.array_equal(kept_samples(first), kept_samples(other_seed))
    # The generator advances: two calls of one layer draw different masks.
    layer = StochasticDepth(rate=0.5, seed=42)
    call1 = kept_samples(layer(x, training=True))
    call2 = kept_samples(layer(x, training=True))
    assert np.array_equal(call1, kept_samples(first))
    assert not np.array_equal(call1, call2)


def test_gradient_is_mask_over_keep_probability():
    rate = 0.25
    x = positive_inputs((256, 3))
    layer = StochasticDepth(rate=rate, seed=5)
    y, grad = value_and_gradient(lambda t: layer(t, training=True), x)
    kept = kept_samples(y)
    assert 0 < kept.sum() < len(kept)
    expected = np.broadcast_to(kept[:, None].astype("float32") / np.float32(1.0 - rate), x.shape)
    assert_allclose(grad, expected, atol=0, rtol=1e-6)
    # Gradient through the identity path (inference) is 1 everywhere.
    _, grad = value_and_gradient(lambda t: layer(t, training=False), x)
    assert_allclose(grad, np.ones_like(x), atol=0, rtol=0)


def test_trains_under_jit_and_drops_inside_the_compiled_step():
    # y = StochasticDepth(w * x) with w = 1, x = 1, target 0, rate 0.5: each
    # sample's output is 2 (kept) or 0 (dropped), so the first step's mse is
    # mean(y^2) = 4 * kept fraction (about 2); without dropping it would be 1.
    batch = 2000
    inputs = keras.Input((1,))
    dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")
    layer = StochasticDepth(rate=0.5, seed=9)
    model = keras.Model(inputs, layer(dense(inputs)))
    state_before = to_numpy(layer.seed_generator.state).copy()
    history = fit_one_step(model, np.ones((batch, 1), "float32"), np.zeros((batch, 1), "float32"))
    # XLA on TF and JAX (jax.jit of the whole train step), eager on torch.
    assert model.jit_compile is (backend_name() != "torch")
    kept_fraction = history.history["loss"][0] / 4.0
    assert abs(kept_fraction - 0.5) < 0.05, kept_fraction
    # The compiled step advanced the seed generator's state.
    assert not np.array_equal(to_numpy(layer.seed_generator.state), state_before)


@pytest.mark.parametrize(
    "kwargs, error, argument",
    [
        ({"rate": -0.1}, ValueError, "rate"),
        ({"rate": 1.0}, ValueError, "rate"),
        ({"rate": 1.5}, ValueError, "rate"),
        ({"rate": "0.1"}, TypeError, "rate"),
        ({"rate": True}, TypeError, "rate"),
        ({"rate": 0.1, "seed": 1.5}, TypeError, "seed"),
        ({"rate": 0.1, "seed": "1"}, TypeError, "seed"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, argument):
    with pytest.raises(error, match=f"`{argument}`.*{argument}="):
        StochasticDepth(**kwargs)
