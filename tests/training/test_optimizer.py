import dataclasses
import math

import keras
import numpy as np
import pytest

from keras_cvlec.layers.layer_scale import LayerScale
from keras_cvlec.models import registry
from keras_cvlec.models.registry import build_model
from keras_cvlec.training import (
    RECIPES,
    augmentation_strength,
    cosine_schedule,
    make_optimizer,
    norm_momentum_for,
    recipe_augmentation,
    recipe_for,
    recipe_optimizer,
    resolve_recipe,
    scaled_learning_rate,
    weight_decay_exclusions,
)
from keras_cvlec.training.recipes import IMAGENET_TRAIN_IMAGES
from keras_cvlec.utils import structure_only
from tests.harness import assert_allclose, to_numpy

NORM_LAYERS = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
)


def _expected_exclusions(model):
    """Paths of biases, normalisation parameters and LayerScale gammas,
    found by walking the layers (not by the variables' ranks)."""
    paths = set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        own = layer._trainable_variables
        if isinstance(layer, NORM_LAYERS + (LayerScale,)) or (
            type(layer).__name__ == "ChannelLayerNormalization"
        ):
            paths.update(v.path for v in own)
        else:
            paths.update(v.path for v in own if v.name == "bias")
    return paths


@pytest.mark.parametrize(
    "name, expected_count",
    [
        # 20 BatchNorms (stem, 2 per block, 3 projection shortcuts) x 2, and
        # v1's 20 conv biases + the classifier's.
        ("resnet18", 20 * 2 + 21),
        # 12 blocks x (dw bias, norm gamma/beta, 2 dense biases, layer scale),
        # stem conv bias + norm, 3 downsamplings x (norm + conv bias), head
        # norm + dense bias.
        ("convnext_atto", 12 * 6 + 3 + 3 * 3 + 3),
    ],
)
def test_weight_decay_exclusions(name, expected_count):
    # Shapes only: drawing the initial values costs far more than the build.
    with structure_only():
        model = build_model(name, input_shape=(32, 32, 3), num_classes=10)
    excluded = {v.path for v in weight_decay_exclusions(model)}
    assert excluded == _expected_exclusions(model)
    assert len(excluded) == expected_count
    decayed = [v for v in model.trainable_variables if v.path not in excluded]
    assert {v.name for v in decayed} <= {"kernel", "depthwise_kernel"}
    assert len(decayed) + len(excluded) == len(model.trainable_variables)


def test_adamw_step_decays_only_kernels():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.LayerNormalization()]
    )
    model.set_weights([np.full(w.shape, 2.0, "float32") for w in model.get_weights()])
    lr, wd = 0.1, 0.5
    optimizer = make_optimizer(learning_rate=lr, weight_decay=wd, total_steps=10, model=model)
    variables = model.trainable_variables
    optimizer.apply_gradients([(keras.ops.zeros(v.shape), v) for v in variables])
    values = {v.path: to_numpy(v) for v in variables}
    # A zero gradient leaves Adam's moments at zero: only the decay moves.
    assert_allclose(values["sequential/dense/kernel"], np.full((4, 3), 2.0 * (1 - lr * wd)))
    for path in (
        "sequential/dense/bias",
        "sequential/layer_normalization/gamma",
        "sequential/layer_normalization/beta",
    ):
        assert_allclose(values[path], np.full(values[path].shape, 2.0))


def _closed_form(step, peak, total, warmup, start=0.0):
    if step < warmup:
        return start + (peak - start) * step / warmup
    progress = min(step - warmup, total - warmup) / (total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def test_schedule_values():
    peak, total, warmup = 4e-3, 100, 20
    schedule = cosine_schedule(learning_rate=peak, total_steps=total, warmup_steps=warmup)
    optimizer = make_optimizer(
        learning_rate=peak, weight_decay=0.05, total_steps=total, warmup_steps=warmup
    )
    # start, within the warmup, end of warmup, middle of the decay, end, after
    for step, expected in [
        (0, 0.0),
        (10, peak / 2),
        (20, peak),
        (60, peak / 2),
        (100, 0.0),
        (130, 0.0),
        (35, None),
    ]:
        expected = _closed_form(step, peak, total, warmup) if expected is None else expected
        assert float(to_numpy(schedule(step))) == pytest.approx(expected, abs=1e-9)
        optimizer.iterations.assign(step)
        assert float(to_numpy(optimizer.learning_rate)) == pytest.approx(expected, abs=1e-9)
    schedule = cosine_schedule(
        learning_rate=1.0, total_steps=10, warmup_steps=4, initial_learning_rate=0.2
    )
    assert float(to_numpy(schedule(2))) == pytest.approx(0.6)


def test_optimizer_bad_arguments():
    with pytest.raises(ValueError, match="warmup_steps.*less than `total_steps`=10.*10"):
        make_optimizer(learning_rate=1e-3, weight_decay=0.0, total_steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="weight_decay.*-0.1"):
        make_optimizer(learning_rate=1e-3, weight_decay=-0.1, total_steps=10)
    with pytest.raises(ValueError, match="learning_rate.*> 0"):
        make_optimizer(learning_rate=0.0, weight_decay=0.0, total_steps=10)
    with pytest.raises(TypeError, match="total_steps"):
        make_optimizer(learning_rate=1e-3, weight_decay=0.0, total_steps=10.5)


@pytest.mark.backend_independent
def test_recipes():
    convnext = RECIPES["convnext"]
    assert (convnext.base_learning_rate, convnext.reference_batch_size) == (4e-3, 4096)
    assert scaled_learning_rate(convnext, 4096) == pytest.approx(4e-3)
    # By default the recipe's rate at any batch size; the fourth root, timm's
    # square root and SGD's linear rule on request.
    assert scaled_learning_rate(convnext, 128) == 4e-3
    assert scaled_learning_rate(RECIPES["resnet"], 32) == 8e-3
    fourth_root = convnext.with_options(learning_rate_scaling="fourth_root")
    assert scaled_learning_rate(fourth_root, 128) == pytest.approx(4e-3 / 32**0.25)
    sqrt = RECIPES["resnet"].with_options(learning_rate_scaling="sqrt")
    assert scaled_learning_rate(sqrt, 32) == pytest.approx(1e-3)
    linear = RECIPES["resnet"].with_options(learning_rate_scaling="linear")
    assert scaled_learning_rate(linear, 256) == pytest.approx(1e-3)
    assert recipe_for("convnext_tiny").drop_path_rate == 0.1
    assert recipe_for("convnext_base").drop_path_rate == 0.5
    assert recipe_for("convnext_atto").drop_path_rate == 0.0
    assert recipe_for("resnet50").name == "resnet"
    assert all(recipe_for(m).name == "unet" for m in ("unet", "segnet", "fcn8s"))
    assert recipe_for("resnet18", "convnext").weight_decay == 0.05
    assert {r.label_smoothing for r in (RECIPES["resnet"], convnext)} == {0.1}
    with pytest.raises(ValueError, match="No training recipe.*autoencoder.*'reconstruction'"):
        recipe_for("autoencoder")
    with pytest.raises(ValueError, match="model_name.*'resnet7'.*'resnet18'"):
        recipe_for("resnet7")
    with pytest.raises(ValueError, match="recipe.*'vit'.*'convnext'"):
        recipe_for("resnet18", "vit")
    with pytest.raises(ValueError, match="batch_size.*0"):
        scaled_learning_rate(convnext, 0)


@pytest.mark.backend_independent
def test_recipe_follows_the_registry_family_not_the_name(monkeypatch):
    """`recipe_for` reads `model_info(name).family` and task."""
    resnet18 = registry.model_info("resnet18")
    entries = {
        "narrow_net": dataclasses.replace(resnet18, name="narrow_net"),
        "resnet_vgg": dataclasses.replace(resnet18, name="resnet_vgg", family="vgg"),
        "convnext_seg": dataclasses.replace(
            resnet18, name="convnext_seg", task="segmentation", family="convnext"
        ),
    }
    for name, info in entries.items():
        monkeypatch.setitem(registry._REGISTRY, name, info)
    assert recipe_for("narrow_net").name == "resnet"
    assert recipe_for("convnext_seg").name == "unet"
    with pytest.raises(ValueError, match="No training recipe.*'resnet_vgg'.*family 'vgg'"):
        recipe_for("resnet_vgg")


@pytest.mark.backend_independent
def test_recipe_with_options():
    resnet = RECIPES["resnet"]
    changed = resnet.with_options(mixup_alpha=0, clipnorm=1, augment=False)
    assert (changed.mixup_alpha, changed.clipnorm, changed.augment) == (0.0, 1.0, False)
    assert type(changed.mixup_alpha) is float and type(changed.clipnorm) is float
    assert changed.weight_decay == resnet.weight_decay and resnet.mixup_alpha == 0.1
    assert resnet.with_options() == resnet
    cases = [
        (
            dict(mixup=0.2),
            ValueError,
            "Unknown recipe option.*'mixup'.*Allowed: base_learning_rate",
        ),
        (dict(epochs=3), ValueError, "Unknown recipe option.*'epochs'"),
        (dict(name="mine"), ValueError, "Unknown recipe option.*'name'"),
        (dict(base_learning_rate=0.0), ValueError, "base_learning_rate.*> 0.0"),
        (dict(label_smoothing=1.0), ValueError, "label_smoothing.*\\[0, 1\\)"),
        (dict(randaugment_magnitude=11), ValueError, "randaugment_magnitude.*0..10.*11"),
        (dict(randaugment_magnitude=2.5), TypeError, "randaugment_magnitude.*int"),
        (dict(augment="no"), TypeError, "augment.*True or False"),
        (dict(mixup_alpha=-1), ValueError, "mixup_alpha.*>= 0.0"),
        (dict(clipnorm=0), ValueError, "clipnorm.*> 0.0"),
        (dict(reference_batch_size=0), ValueError, "reference_batch_size.*>= 1"),
        (
            dict(learning_rate_scaling="cubic"),
            ValueError,
            "learning_rate_scaling.*'cubic'.*'fourth_root'",
        ),
        (dict(norm_momentum=1.0), ValueError, "norm_momentum.*\\[0, 1\\)"),
        (dict(ema_momentum=float("nan")), ValueError, "ema_momentum"),
        (dict(base_learning_rate=float("inf")), ValueError, "base_learning_rate.*finite"),
        (dict(scale_augmentation=1), TypeError, "scale_augmentation.*True or False"),
    ]
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            resnet.with_options(**options)


def test_recipe_augmentation():
    """The recipes' augmentation strengths reach Keras's layers."""
    layers = {
        name: recipe_augmentation(
            RECIPES[name], "classification", num_classes=10, seed=3
        ).pipeline.layers
        for name in ("resnet", "convnext")
    }
    for name, magnitude, cutmix, mixup in (("resnet", 0.6, 1.0, 0.1), ("convnext", 0.9, 1.0, 0.8)):
        flip, shift, rand_augment, cutmix_layer, mixup_layer = layers[name]
        assert isinstance(flip, keras.layers.RandomFlip) and flip.mode == "horizontal"
        assert isinstance(shift, keras.layers.RandomTranslation)
        assert isinstance(rand_augment, keras.layers.RandAugment)
        assert (rand_augment.num_ops, rand_augment.factor) == (2, (0.0, magnitude))
        assert isinstance(cutmix_layer, keras.layers.CutMix) and cutmix_layer.factor == (
            0.0,
            cutmix,
        )
        assert isinstance(mixup_layer, keras.layers.MixUp) and mixup_layer.alpha == mixup
        assert RECIPES[name].mixes_labels
    assert recipe_augmentation(RECIPES["unet"], "segmentation", num_classes=4) is None
    segmentation = RECIPES["unet"].with_options(augment=True)
    augment = recipe_augmentation(segmentation, "segmentation", num_classes=4)
    assert augment.task == "segmentation" and not augment.one_hot
    plain = RECIPES["resnet"].with_options(randaugment_magnitude=0, mixup_alpha=0, cutmix_alpha=0)
    assert not plain.mixes_labels
    assert [
        type(layer).__name__
        for layer in recipe_augmentation(plain, "classification", num_classes=10).pipeline.layers
    ] == ["RandomFlip", "RandomTranslation"]
    with pytest.raises(ValueError, match="Unknown `task`: 'depth'"):
        recipe_augmentation(plain, "depth", num_classes=10)


@pytest.mark.backend_independent
def test_resolve_recipe_gives_the_published_values_at_their_setting():
    for name in ("resnet", "convnext"):
        recipe = RECIPES[name]
        steps = math.ceil(IMAGENET_TRAIN_IMAGES / recipe.reference_batch_size)
        run = resolve_recipe(
            recipe,
            batch_size=recipe.reference_batch_size,
            steps_per_epoch=steps,
            epochs=recipe.epochs,
        )
        assert run.learning_rate == pytest.approx(recipe.base_learning_rate)
        assert run.warmup_steps == round(recipe.warmup_epochs * steps)
        assert run.augmentation_strength == 1.0
        assert run.recipe == recipe  # RandAugment, MixUp and CutMix at full strength
        assert run.recipe.ema_momentum is None


@pytest.mark.backend_independent
def test_resolve_recipe_for_a_short_run_on_small_data():
    """1,300 images at batch 32 for 15 epochs: the recipe's ImageNet setting
    would leave AdamW at 1.25e-4, warm up for a third of the run and mix
    labels; the run uses the fourth-root rule, 5 % warm-up and no mixing."""
    run = resolve_recipe(RECIPES["resnet"], batch_size=32, steps_per_epoch=41, epochs=15)
    assert run.learning_rate == 8e-3  # "constant": the recipe's rate at any batch size
    assert run.learning_rate_source == "the recipe's rate at batch 2048, not scaled"
    assert run.total_steps == 615 and run.warmup_steps == 31  # 5 of 100 epochs: 5 %
    assert run.augmentation_strength == 0.0
    recipe = run.recipe
    assert (recipe.randaugment_magnitude, recipe.mixup_alpha, recipe.cutmix_alpha) == (0, 0.0, 0.0)
    assert not recipe.mixes_labels and recipe.augment  # flips and shifts stay
    assert run.norm_momentum == 0.9
    assert (
        resolve_recipe(
            RECIPES["resnet"], batch_size=32, steps_per_epoch=41, epochs=15, learning_rate=2e-3
        ).learning_rate
        == 2e-3
    )
    text = run.summary("classification")
    for words in (
        "0.008 (the recipe's rate at batch 2048, not scaled)",
        "31 steps (5% of the run)",
        "RandAugment off, CutMix off, MixUp off",
        "momentum 0.9 (41 steps",
    ):
        assert words in text, text
    stored = run.to_json()
    assert (stored["learning_rate"], stored["warmup_steps"], stored["mixup_alpha"]) == (
        8e-3,
        31,
        0.0,
    )
    fourth_root = RECIPES["resnet"].with_options(learning_rate_scaling="fourth_root")
    run = resolve_recipe(fourth_root, batch_size=32, steps_per_epoch=41, epochs=15)
    assert run.learning_rate == pytest.approx(8e-3 * (32 / 2048) ** 0.25)
    assert run.learning_rate_source == "0.008 x (32 / 2048) ** 0.25"
    with pytest.raises(ValueError, match="learning_rate.*finite"):
        resolve_recipe(
            RECIPES["resnet"],
            batch_size=32,
            steps_per_epoch=41,
            epochs=15,
            learning_rate=float("inf"),
        )


@pytest.mark.backend_independent
def test_augmentation_strength_between_small_and_imagenet_runs():
    recipe = RECIPES["convnext"]
    images_seen = 1407 * 32 * 100  # CIFAR-10 train split, 100 epochs
    expected = np.log(images_seen / 1e5) / np.log(IMAGENET_TRAIN_IMAGES * 300 / 1e5)
    assert augmentation_strength(recipe, images_seen) == pytest.approx(expected)
    run = resolve_recipe(recipe, batch_size=32, steps_per_epoch=1407, epochs=100)
    assert run.recipe.randaugment_magnitude == round(9 * expected)
    assert run.recipe.mixup_alpha == round(0.8 * expected, 2) > 0
    assert run.recipe.cutmix_alpha == round(1.0 * expected, 2)
    assert augmentation_strength(recipe, 100_000) == 0.0
    assert augmentation_strength(recipe, IMAGENET_TRAIN_IMAGES * 400) == 1.0
    assert augmentation_strength(recipe.with_options(scale_augmentation=False), 10) == 1.0


@pytest.mark.backend_independent
def test_norm_momentum_follows_the_steps_per_epoch():
    assert [norm_momentum_for(steps) for steps in (5, 100, 200, 500, 1000, 10**5)] == [
        0.9,
        0.9,
        0.95,
        0.98,
        0.99,
        0.99,
    ]
    fixed = RECIPES["unet"].with_options(norm_momentum=0.97)
    assert resolve_recipe(fixed, batch_size=8, steps_per_epoch=3, epochs=2).norm_momentum == 0.97
    model = build_model("resnet18", num_classes=3, input_shape=(32, 32, 3), filters=8)
    run = resolve_recipe(RECIPES["resnet"], batch_size=8, steps_per_epoch=20, epochs=2)
    norms = [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(norms) == 20  # stem + 8 blocks x 2 + 3 shortcuts
    assert run.set_norm_momentum(model) == 20
    assert {layer.momentum for layer in norms} == {0.9}


def test_weight_ema_through_the_recipe():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    recipe = RECIPES["unet"].with_options(ema_momentum=0.9)
    optimizer = resolve_recipe(recipe, batch_size=8, steps_per_epoch=10, epochs=2).optimizer(model)
    assert optimizer.use_ema and optimizer.ema_momentum == 0.9
    assert (
        not resolve_recipe(RECIPES["unet"], batch_size=8, steps_per_epoch=10, epochs=2)
        .optimizer(model)
        .use_ema
    )


@pytest.mark.parametrize(
    "name, scaling, batch_size",
    [
        ("resnet", "fourth_root", 32),
        ("convnext", "sqrt", 64),
        ("unet", "linear", 8),
        ("unet", "fourth_root", 128),
    ],
)
def test_built_optimizer_peaks_at_the_scaled_learning_rate(name, scaling, batch_size):
    """Without a learning_rate, the optimizer a recipe builds peaks at
    base_learning_rate * (batch_size / reference_batch_size) ** exponent,
    computed here from the recipe's fields (not by scaled_learning_rate)."""
    recipe = RECIPES[name].with_options(learning_rate_scaling=scaling)
    exponent = {"fourth_root": 0.25, "sqrt": 0.5, "linear": 1.0}[scaling]
    peak = recipe.base_learning_rate * (batch_size / recipe.reference_batch_size) ** exponent
    assert not math.isclose(peak, recipe.base_learning_rate, rel_tol=0.05)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    for optimizer in (
        recipe_optimizer(recipe, model=model, batch_size=batch_size, steps_per_epoch=10, epochs=4),
        resolve_recipe(recipe, batch_size=batch_size, steps_per_epoch=10, epochs=4).optimizer(
            model
        ),
    ):
        schedule = optimizer._learning_rate
        assert schedule.warmup_target == pytest.approx(peak)
        # The rate the optimizer applies at the end of the warm-up.
        assert schedule.warmup_steps > 0
        optimizer.iterations.assign(schedule.warmup_steps)
        assert float(to_numpy(optimizer.learning_rate)) == pytest.approx(peak, rel=1e-5)
        optimizer.iterations.assign(0)
        assert float(to_numpy(optimizer.learning_rate)) == 0.0


@pytest.mark.backend_independent
def test_warmup_is_capped_at_half_the_run():
    """Warm-up takes the smallest of the recipe's warm-up epochs, its share of
    the recipe's epochs, and half of the run's steps."""
    recipe = RECIPES["unet"].with_options(warmup_epochs=15)  # 15 of its 20 epochs
    run = resolve_recipe(recipe, batch_size=8, steps_per_epoch=10, epochs=2)
    assert run.total_steps == 20 and run.warmup_steps == 10
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    schedule = run.optimizer(model)._learning_rate
    assert (schedule.warmup_steps, schedule.decay_steps) == (10, 10)
    # The recipe's share of its epochs binds first: 3 of 20 epochs over 20 steps.
    assert (
        resolve_recipe(
            RECIPES["unet"].with_options(warmup_epochs=3),
            batch_size=8,
            steps_per_epoch=10,
            epochs=2,
        ).warmup_steps
        == 3
    )
