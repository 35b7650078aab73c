"""Gradient accumulation: `n` batches of `b` images update the weights as
one batch of `n * b`, with the package's optimizer (AdamW, weight decay,
clipping, warm-up + cosine schedule); how a run resolves it."""

import json

import keras
import numpy as np
import pytest

from keras_cvlec.training import RECIPES, make_optimizer, resolve_recipe
from keras_cvlec.training.cli import _recipe_options
from keras_cvlec.training.optimizer import PerUpdateSchedule
from tests.harness import to_numpy


def _model():
    # No BatchNormalization: its statistics move per batch, not per update.
    return keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(4, 3, activation="gelu"),
            keras.layers.LayerNormalization(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )


def _train(weights, images, labels, *, batch_size, accumulation):
    model = _model()
    model.set_weights(weights)
    optimizer = make_optimizer(
        learning_rate=3e-2,
        weight_decay=0.05,
        total_steps=3,  # updates: warm-up, peak, cosine
        warmup_steps=1,
        initial_learning_rate=1e-2,
        clipnorm=0.5,
        model=model,
        gradient_accumulation_steps=accumulation,
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(images, labels, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return [to_numpy(w) for w in model.get_weights()], optimizer


def test_accumulated_batches_update_as_one_large_batch():
    steps, batch = 4, 2
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3 * steps * batch, 6, 6, 2)).astype("float32")
    labels = rng.integers(0, 3, size=3 * steps * batch)
    start = [to_numpy(w) for w in _model().get_weights()]
    large, large_optimizer = _train(start, images, labels, batch_size=steps * batch, accumulation=1)
    small, small_optimizer = _train(start, images, labels, batch_size=batch, accumulation=steps)
    assert int(large_optimizer.iterations) == int(small_optimizer.iterations) == 3
    assert int(small_optimizer._iterations) == 3 * steps  # batches
    assert max(np.abs(a - s).max() for a, s in zip(start, large)) > 1e-2  # it trained
    for expected, actual in zip(large, small):
        np.testing.assert_allclose(actual, expected, atol=1e-5)


@pytest.mark.backend_independent
def test_the_schedule_counts_updates_and_survives_serialization():
    optimizer = make_optimizer(
        learning_rate=1.0,
        weight_decay=0.0,
        total_steps=10,
        warmup_steps=5,
        ema_momentum=0.9,
        gradient_accumulation_steps=4,
    )
    schedule = optimizer._learning_rate
    assert isinstance(schedule, PerUpdateSchedule) and schedule.steps == 4
    rates = [float(schedule(step)) for step in (0, 3, 4, 7, 8, 20)]
    np.testing.assert_allclose(rates, [0.0, 0.0, 0.2, 0.2, 0.4, 1.0], atol=1e-6)
    # The average moves every batch: 4 batches decay it as one update at 0.9.
    assert optimizer.ema_momentum**4 == pytest.approx(0.9)
    config = json.loads(json.dumps(keras.optimizers.serialize(optimizer)))
    restored = keras.optimizers.deserialize(config)
    assert restored.gradient_accumulation_steps == 4
    assert float(restored._learning_rate(8)) == pytest.approx(0.4, abs=1e-6)
    plain = make_optimizer(learning_rate=1.0, weight_decay=0.0, total_steps=10)
    assert plain.gradient_accumulation_steps is None
    assert not isinstance(plain._learning_rate, PerUpdateSchedule)


@pytest.mark.backend_independent
def test_a_run_resolves_learning_rate_and_warmup_per_update():
    recipe = RECIPES["resnet"].with_options(
        gradient_accumulation_steps=4, learning_rate_scaling="linear"
    )
    run = resolve_recipe(recipe, batch_size=32, steps_per_epoch=400, epochs=1)
    # The rate of a batch of 4 x 32 (8e-3 at 2048, linear), 100 updates, the
    # recipe's 5 of 100 warm-up epochs capped to 5% of them.
    assert run.effective_batch_size == 128
    assert run.learning_rate == pytest.approx(8e-3 * 128 / 2048)
    assert "(128 / 2048)" in run.learning_rate_source
    assert (run.total_steps, run.total_updates, run.warmup_steps) == (400, 100, 5)
    assert run.optimizer(_model()).gradient_accumulation_steps == 4
    single = resolve_recipe(
        RECIPES["resnet"].with_options(learning_rate_scaling="linear"),
        batch_size=128,
        steps_per_epoch=100,
        epochs=1,
    )
    assert (single.learning_rate, single.total_updates, single.warmup_steps) == (
        run.learning_rate,
        run.total_updates,
        run.warmup_steps,
    )
    # BatchNorm statistics move per batch: the momentum of 400 batches an epoch.
    assert (run.norm_momentum, single.norm_momentum) == (0.975, 0.9)
    recorded = run.to_json()
    assert recorded["gradient_accumulation_steps"] == 4
    assert recorded["effective_batch_size"] == 128 and recorded["total_updates"] == 100
    assert "4 batches of 32 a step (batch 128)" in run.summary("classification")
    assert "cosine decay over 100 steps" in run.summary("classification")


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "value, error, message",
    [
        (0, ValueError, "gradient_accumulation_steps.*>= 1.*0"),
        (2.5, TypeError, "gradient_accumulation_steps.*2.5"),
    ],
)
def test_bad_accumulation_steps_are_refused(value, error, message):
    with pytest.raises(error, match=message):
        RECIPES["unet"].with_options(gradient_accumulation_steps=value)
    with pytest.raises(error, match=message):
        make_optimizer(
            learning_rate=1.0, weight_decay=0.0, total_steps=2, gradient_accumulation_steps=value
        )


@pytest.mark.backend_independent
def test_more_accumulation_steps_than_batches_is_refused():
    recipe = RECIPES["unet"].with_options(gradient_accumulation_steps=7)
    with pytest.raises(ValueError, match="at most the run's 6 batches.*=7"):
        resolve_recipe(recipe, batch_size=8, steps_per_epoch=3, epochs=2)


@pytest.mark.backend_independent
def test_the_cli_flag_is_the_recipe_field():
    import argparse

    from keras_cvlec.training.cli import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    base = ["train", "--model", "unet", "--dataset", "shapes", "--output", "run"]
    args = parser.parse_args(base + ["--gradient-accumulation-steps", "4"])
    assert _recipe_options(args) == {"gradient_accumulation_steps": 4}
    args = parser.parse_args(base + ["--recipe-options", "gradient_accumulation_steps=4"])
    assert _recipe_options(args) == {"gradient_accumulation_steps": 4}
    assert _recipe_options(parser.parse_args(base)) == {}
    args = parser.parse_args(
        base
        + [
            "--gradient-accumulation-steps",
            "2",
            "--recipe-options",
            "gradient_accumulation_steps=4",
        ]
    )
    with pytest.raises(SystemExit, match="--gradient-accumulation-steps 2.*=4.*differ"):
        _recipe_options(args)
