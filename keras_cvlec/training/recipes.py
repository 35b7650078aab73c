"""Training recipes as data: the published hyper-parameters per model family.

Learning rates are given at a reference batch size and scaled linearly to the
batch size of a run (Goyal et al., 2017, "Accurate, Large Minibatch SGD").
"""

import dataclasses

from keras_cvlec.data.augmentation import classification_augmentation, segmentation_augmentation
from keras_cvlec.models.registry import list_models, model_task
from keras_cvlec.training.optimizer import make_optimizer
from keras_cvlec.utils.validation import (
    check_bool,
    check_choice,
    check_float,
    check_positive_int,
    check_rate,
)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The hyper-parameters of one training recipe.

    Args:
        name: the recipe's key in `RECIPES`.
        base_learning_rate: AdamW's peak learning rate at
            `reference_batch_size`.
        reference_batch_size: the batch size `base_learning_rate` is for.
        weight_decay: AdamW's decoupled weight decay.
        warmup_epochs: epochs of linear warmup.
        epochs: the recipe's number of epochs (the default of a run).
        label_smoothing: label smoothing of the cross-entropy.
        drop_path_rate: stochastic depth at the last block (classification
            models); `drop_path_rates` overrides it per model variant.
        augment: whether training data is augmented (see
            `recipe_augmentation`).
        randaugment_magnitude: RandAugment magnitude of the published recipe,
            on timm's 0-10 scale (0: off).
        mixup_alpha: MixUp's alpha of the published recipe (0: off).
        cutmix_alpha: CutMix's alpha of the published recipe (0: off).
        clipnorm: optional gradient clipping norm.
        drop_path_rates: `{model name: drop_path_rate}` overrides.
        source: where the numbers come from.
    """

    name: str
    base_learning_rate: float
    reference_batch_size: int
    weight_decay: float
    warmup_epochs: float
    epochs: int
    label_smoothing: float
    drop_path_rate: float = 0.0
    augment: bool = True
    randaugment_magnitude: int = 0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    clipnorm: float = None
    drop_path_rates: dict = dataclasses.field(default_factory=dict)
    source: str = ""

    @property
    def mixes_labels(self):
        """Whether its classification augmentation blends labels (MixUp or
        CutMix), which makes the targets one-hot."""
        return self.augment and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def with_options(self, **options):
        """A copy with some hyper-parameters changed, each checked.

        Args:
            **options: new values of fields of `OPTION_CHECKS` (all but the
                name, source, per-variant drop-path table and epochs, which
                a run sets itself).

        Returns:
            A `Recipe`.

        Example:

        >>> recipe = RECIPES["resnet"].with_options(mixup_alpha=0.0, cutmix_alpha=0.0)
        >>> recipe.mixes_labels
        False
        """
        unknown = sorted(set(options) - set(OPTION_CHECKS))
        if unknown:
            raise ValueError(
                f"Unknown recipe option(s) {', '.join(map(repr, unknown))}. Allowed: "
                f"{', '.join(OPTION_CHECKS)}."
            )
        return dataclasses.replace(
            self, **{name: OPTION_CHECKS[name](name, value) for name, value in options.items()}
        )


def _check_magnitude(name, value):
    value = check_positive_int(name, value, minimum=0)
    if value > RANDAUGMENT_MAX_MAGNITUDE:
        raise ValueError(
            f"`{name}` must be in 0..{RANDAUGMENT_MAX_MAGNITUDE}. Received: {name}={value}"
        )
    return value


def _check_positive(name, value):
    return check_float(name, value, 0.0, inclusive=False)


def _check_clipnorm(name, value):
    return None if value is None else _check_positive(name, value)


def _check_non_negative(name, value):
    return check_float(name, value, 0.0)


# The fields `Recipe.with_options` may change, and how each is checked.
OPTION_CHECKS = {
    "base_learning_rate": _check_positive,
    "reference_batch_size": check_positive_int,
    "weight_decay": _check_non_negative,
    "warmup_epochs": _check_non_negative,
    "label_smoothing": check_rate,
    "drop_path_rate": check_rate,
    "augment": check_bool,
    "randaugment_magnitude": _check_magnitude,
    "mixup_alpha": _check_non_negative,
    "cutmix_alpha": _check_non_negative,
    "clipnorm": _check_clipnorm,
}


RECIPES = {
    # Wightman et al., 2021, "ResNet strikes back", procedure A3 (100 epochs):
    # lr 8e-3 at batch 2048, wd 0.02, 5 warmup epochs, RandAugment m6,
    # mixup 0.1, cutmix 1.0. A3 uses LAMB and a binary cross-entropy; here
    # AdamW and torchvision's label smoothing 0.1.
    "resnet": Recipe(
        name="resnet",
        base_learning_rate=8e-3,
        reference_batch_size=2048,
        weight_decay=0.02,
        warmup_epochs=5,
        epochs=100,
        label_smoothing=0.1,
        randaugment_magnitude=6,
        mixup_alpha=0.1,
        cutmix_alpha=1.0,
        source="Wightman et al. 2021, ResNet strikes back, A3 (arXiv:2110.00476)",
    ),
    # Liu et al., 2022, "A ConvNet for the 2020s", Table 5 (ImageNet-1K, 300
    # epochs): AdamW lr 4e-3 at batch 4096, wd 0.05, 20 warmup epochs, label
    # smoothing 0.1, RandAugment m9, mixup 0.8, cutmix 1.0, stochastic depth
    # T 0.1, S 0.4, B/L 0.5 (XL 0.5 from the paper's 22K-pretrained setting).
    # The small timm variants (atto ... nano) train without drop path here.
    "convnext": Recipe(
        name="convnext",
        base_learning_rate=4e-3,
        reference_batch_size=4096,
        weight_decay=0.05,
        warmup_epochs=20,
        epochs=300,
        label_smoothing=0.1,
        randaugment_magnitude=9,
        mixup_alpha=0.8,
        cutmix_alpha=1.0,
        drop_path_rates={
            "convnext_tiny": 0.1,
            "convnext_small": 0.4,
            "convnext_base": 0.5,
            "convnext_large": 0.5,
            "convnext_xlarge": 0.5,
        },
        source="Liu et al. 2022, A ConvNet for the 2020s, Table 5 (arXiv:2201.03545)",
    ),
    # Segmentation models (U-Net, SegNet, FCN) on small data sets: defaults
    # of this package, not a published recipe. Tuned on the shapes data set
    # (benchmarks/main_job.py): a U-Net of 16 filters and depth 3 reaches a
    # test mean IoU above 0.90 in 12 epochs of 2048 images at batch 32.
    "unet": Recipe(
        name="unet",
        base_learning_rate=4e-3,
        reference_batch_size=32,
        weight_decay=1e-4,
        warmup_epochs=1,
        epochs=20,
        label_smoothing=0.0,
        augment=False,
        source="keras_cvlec defaults",
    ),
}

_FAMILY_RECIPES = {"resnet": "resnet", "convnext": "convnext"}
# timm's RandAugment ("rand-m9-n2"): two operations per image, magnitudes on a
# 0-10 scale, which Keras's `RandAugment(factor=...)` takes as 0-1.
RANDAUGMENT_OPS = 2
RANDAUGMENT_MAX_MAGNITUDE = 10


def recipe_for(model_name, name=None):
    """The recipe of a registered model, with the drop-path rate of its
    variant.

    Args:
        model_name: a name from `keras_cvlec.list_models()`.
        name: a key of `RECIPES`; defaults to the model's family:
            `"resnet"` for ResNets, `"convnext"` for ConvNeXts, `"unet"` for
            every segmentation model.

    Returns:
        A `Recipe`.

    Example:

    >>> recipe_for("convnext_tiny").drop_path_rate
    0.1
    """
    check_choice("model_name", model_name, list_models())
    if name is None:
        name = _family_recipe(model_name)
    recipe = RECIPES[check_choice("recipe", name, tuple(RECIPES))]
    rate = recipe.drop_path_rates.get(model_name, recipe.drop_path_rate)
    return dataclasses.replace(recipe, drop_path_rate=rate)


def _family_recipe(model_name):
    task = model_task(model_name)
    if task == "segmentation":
        return "unet"
    family = next(
        (key for prefix, key in _FAMILY_RECIPES.items() if model_name.startswith(prefix)), None
    )
    if task != "classification" or family is None:
        raise ValueError(
            f"No training recipe for model_name={model_name!r} (task {task!r}). "
            f"Recipes exist for classification ResNets and ConvNeXts and for "
            f"segmentation models."
        )
    return family


def scaled_learning_rate(recipe, batch_size):
    """The recipe's learning rate scaled linearly to `batch_size`:
    `base_learning_rate * batch_size / reference_batch_size`.

    Example:

    >>> scaled_learning_rate(RECIPES["convnext"], 128)
    0.000125
    """
    batch_size = check_positive_int("batch_size", batch_size)
    return recipe.base_learning_rate * batch_size / recipe.reference_batch_size


def recipe_augmentation(recipe, task, *, num_classes, seed=None):
    """The training-data augmentation of a recipe, or None without one.

    Classification: horizontal flips, shifts of up to 10 %, RandAugment
    (`RANDAUGMENT_OPS` operations at the recipe's magnitude), CutMix and
    MixUp at the recipe's strengths; with mixing the targets come out
    one-hot, so the loss is `keras.losses.CategoricalCrossentropy`.
    Segmentation: `segmentation_augmentation()`'s defaults (the same flip,
    shift and zoom on image and mask).

    Args:
        recipe: a `Recipe`.
        task: `"classification"` or `"segmentation"`.
        num_classes: the number of classes (one-hot width for mixing).
        seed: None or an int seed of the augmentation layers.

    Returns:
        A `keras_cvlec.data.augmentation.Augmentation`, or None when
        `recipe.augment` is False.

    Example:

    >>> augment = recipe_augmentation(RECIPES["convnext"], "classification",
    ...     num_classes=10)
    >>> augment.one_hot
    True
    """
    check_choice("task", task, ("classification", "segmentation"))
    if not recipe.augment:
        return None
    if task == "segmentation":
        return segmentation_augmentation(seed=seed)
    return classification_augmentation(
        num_classes,
        rand_augment_ops=RANDAUGMENT_OPS if recipe.randaugment_magnitude else 0,
        rand_augment_factor=recipe.randaugment_magnitude / RANDAUGMENT_MAX_MAGNITUDE,
        cutmix_alpha=recipe.cutmix_alpha,
        mixup_alpha=recipe.mixup_alpha,
        seed=seed,
    )


def recipe_optimizer(recipe, *, model, batch_size, steps_per_epoch, epochs, learning_rate=None):
    """`make_optimizer` set up by a recipe for a run: AdamW at the recipe's
    learning rate scaled to `batch_size`, its weight decay (not on the
    model's biases and normalisation parameters), warmup and clipping.

    Args:
        recipe: a `Recipe`.
        model: the model to train (built; the optimizer is built for it).
        batch_size: int >= 1, the run's batch size.
        steps_per_epoch: int >= 1, batches per epoch.
        epochs: int >= 1, epochs of the run.
        learning_rate: None (the recipe's, scaled) or the peak learning rate.

    Returns:
        A built `keras.optimizers.AdamW`. A run shorter than the recipe's
        warmup warms up over its first half, so it still reaches the peak.

    Example:

    >>> optimizer = recipe_optimizer(RECIPES["resnet"], model=model,
    ...     batch_size=256, steps_per_epoch=100, epochs=10)  # doctest: +SKIP
    """
    steps_per_epoch = check_positive_int("steps_per_epoch", steps_per_epoch)
    total_steps = steps_per_epoch * check_positive_int("epochs", epochs)
    return make_optimizer(
        learning_rate=learning_rate or scaled_learning_rate(recipe, batch_size),
        weight_decay=recipe.weight_decay,
        total_steps=total_steps,
        warmup_steps=min(round(recipe.warmup_epochs * steps_per_epoch), total_steps // 2),
        model=model,
        clipnorm=recipe.clipnorm,
    )
