"""Mixed precision and XLA in `train`'s set-up (`prepare_training`), for
every model family it trains: a few steps lower the loss, and the saved
model, rebuilt in float32, predicts as the mixed-precision model did."""

import keras
import numpy as np
import pytest

from keras_cvlec.training import prepare_training
from keras_cvlec.training.optimizer import PerUpdateSchedule
from keras_cvlec.training.run import _build
from tests.harness import to_numpy

# One tiny model of each family `train` trains: max-unpooling (SegNet), the
# ConvNeXt GELU and layer norms, a ResNet backbone under an FCN head.
FAMILIES = {
    "resnet18": {"filters": 4},
    "convnext_atto": {},
    "unet": {"filters": 4, "depth": 2},
    "segnet": {"filters": 4, "depth": 2},
    "fcn32s": {"backbone": "resnet18"},
}
# |float32 - mixed| of the outputs (logits) of a model whose weights are
# those of the mixed-precision model, relative to the largest output: the
# mean, and the share of outputs beyond 10 % (bfloat16 keeps 8 bits of
# mantissa, and a near tie of a max-pooling window can pick another position).
MEAN_ERROR = {"mixed_bfloat16": 0.02, "mixed_float16": 0.005}
OUTLIERS = 0.05
# AdamW's peak learning rate: ConvNeXt-atto on one batch oscillates from 1e-4 up
# (in float32 too).
LEARNING_RATES = {"convnext_atto": 5e-5}
# Steps (the schedule's length, on one batch): the FCN's loss falls by half in
# 2 steps on every backend, and its steps are TensorFlow's slowest under XLA
# in bfloat16 (about 1 s each on 2 cores).
STEPS = {"fcn32s": 3}
CASES = [(name, "mixed_bfloat16") for name in FAMILIES] + [("segnet", "mixed_float16")]
# On torch `jit_compile=True` is torch.compile, which takes 30-170 s a model
# on CPU (94 s for this SegNet): torch runs eagerly here.


@pytest.mark.parametrize("model_name, policy", CASES)
def test_mixed_precision_under_xla_trains_and_reloads_in_float32(model_name, policy, tmp_path):
    run = prepare_training(
        model_name,
        "shapes",
        epochs=STEPS.get(model_name, 10),
        batch_size=8,
        image_size=32,
        num_images=8,
        learning_rate=LEARNING_RATES.get(model_name, 1e-2),
        recipe_options={"augment": False},
        model_options=FAMILIES[model_name],
        mixed_precision=policy,
        jit_compile=keras.backend.backend() != "torch",
    )
    model = run.model
    assert model.dtype_policy.name == policy
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left alone
    # float16 needs loss scaling: compile wraps the optimizer in Keras's.
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (
        policy == "mixed_float16"
    )
    history = model.fit(run.data["train"], epochs=run.epochs, verbose=0).history["loss"]
    assert np.isfinite(history).all()
    assert history[-1] < 0.9 * history[0], history

    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    images, _ = run.data["validation"][0]
    mixed = to_numpy(model(images, training=False)).astype("float32")
    np.testing.assert_array_equal(to_numpy(reloaded(images, training=False)), mixed)
    float32, _ = _build(
        model_name,
        run.task,
        run.info,
        images.shape[-1],
        run.plan.recipe,
        run.args["model_options"],
        None,
    )
    float32.load_weights(path)
    assert float32.dtype_policy.name == "float32"
    exact = to_numpy(float32(images, training=False))
    assert exact.dtype == np.float32
    error = np.abs(mixed - exact) / max(1.0, np.abs(exact).max())
    assert error.mean() < MEAN_ERROR[policy], error.mean()
    assert (error > 0.1).mean() < OUTLIERS, (error > 0.1).mean()


def test_mixed_float16_with_gradient_accumulation_scales_the_loss():
    run = prepare_training(
        "unet",
        "shapes",
        epochs=6,
        batch_size=4,
        image_size=32,
        num_images=8,
        learning_rate=1e-2,
        recipe_options={"augment": False, "gradient_accumulation_steps": 2},
        model_options=FAMILIES["unet"],
        mixed_precision="mixed_float16",
    )
    optimizer = run.model.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert optimizer.inner_optimizer.gradient_accumulation_steps == 2
    assert isinstance(optimizer.inner_optimizer._learning_rate, PerUpdateSchedule)
    history = run.model.fit(run.data["train"], epochs=run.epochs, verbose=0).history["loss"]
    assert history[-1] < 0.9 * history[0], history
    assert int(optimizer.inner_optimizer.iterations) == 6  # 12 batches of 4


@pytest.mark.backend_independent
def test_mixed_precision_true_is_float16():
    from keras_cvlec.training.run import _check_mixed_precision

    assert _check_mixed_precision(True) == "mixed_float16"
    assert _check_mixed_precision(False) is None
    assert _check_mixed_precision("mixed_bfloat16") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="mixed_precision.*'float16'.*mixed_bfloat16"):
        _check_mixed_precision("float16")
