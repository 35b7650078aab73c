"""Training recipes as data: the published hyper-parameters per model family,
and how a run derives what it uses from them (`resolve_recipe`).

A recipe is published for one setting (ImageNet, a batch of thousands,
hundreds of epochs). A run on the user's data differs in batch size, length
and data set size, so `resolve_recipe` derives from the run:

- the peak learning rate, for the run's effective batch (`batch_size` times
  `gradient_accumulation_steps`): by default the recipe's own, whatever the batch
  size (`learning_rate_scaling="constant"`). Linear scaling (Goyal et al.
  2017) is for SGD and leaves AdamW almost still at small batches (8e-3 at
  2048 becomes 1.25e-4 at 32); timm's square root (1e-3 at 32) and a fourth
  root (2.8e-3) still under-shoot the short runs of small data sets.
  Measured on the development data (ResNet-18, 16 filters, batch 32, test
  accuracy at 2e-3 / 2.8e-3 / 4e-3 / 5.7e-3 / 8e-3 / 1.6e-2): leaves 0.51 /
  0.61 / 0.65 / 0.66 / 0.72 / 0.72, glyphs 0.53 / 0.64 / 0.73 / 0.78 / 0.75 /
  0.64, fabrics 0.48 / 0.50 / 0.52 / 0.52 / 0.56 / - (the heldout2 data sets
  of benchmarks/generated_data.py); ConvNeXt-atto on leaves 0.34 at 1.2e-3
  and 0.35 at 4e-3.
  The other rules stay available; every rule gives the published value at
  the reference batch size;
- warm-up: the recipe's warm-up epochs, capped at the fraction of the run that
  they are of the recipe's own schedule;
- RandAugment, MixUp and CutMix strengths, scaled by how many images the run
  sees (`augmentation_strength`): off for short runs on small data, full at
  the recipe's own data set size and length;
- the BatchNormalization momentum (`norm_momentum_for`): moving statistics
  over about a tenth of an epoch, so that a run of few steps per epoch
  validates with statistics of its current weights. The statistics move at
  every batch, accumulated or not: counted in batches.

With gradient accumulation (`gradient_accumulation_steps=n`) the optimizer
updates once every `n` batches, with their mean gradient: the learning-rate
schedule and warm-up count updates, and the learning rate is that of a batch
of `n * batch_size`, so that a recipe's global batch is reachable on a
small device.
"""

import dataclasses
import math

import keras

from keras_cvlec.data.augmentation import classification_augmentation, segmentation_augmentation
from keras_cvlec.models.convnext import CONVNEXT_DROP_PATH_RATES
from keras_cvlec.models.registry import list_models, model_info
from keras_cvlec.tasks import TRAINABLE_TASKS
from keras_cvlec.training.optimizer import make_optimizer
from keras_cvlec.utils.validation import (
    check_bool,
    check_choice,
    check_float,
    check_positive_int,
    check_rate,
)

__all__ = [
    "IMAGENET_TRAIN_IMAGES",
    "LEARNING_RATE_SCALING",
    "MIN_AUGMENTED_IMAGES",
    "OPTION_CHECKS",
    "RANDAUGMENT_MAX_MAGNITUDE",
    "RANDAUGMENT_OPS",
    "RECIPES",
    "Recipe",
    "RunRecipe",
    "augmentation_strength",
    "norm_momentum_for",
    "recipe_augmentation",
    "recipe_for",
    "recipe_optimizer",
    "resolve_recipe",
    "scaled_learning_rate",
]

# The exponent of the batch ratio in each learning-rate scaling rule.
LEARNING_RATE_SCALING = {"constant": 0.0, "fourth_root": 0.25, "sqrt": 0.5, "linear": 1.0}
IMAGENET_TRAIN_IMAGES = 1_281_167
# Below this many training images seen in a run (images x epochs), the
# recipe's RandAugment, MixUp and CutMix are off: they regularise runs long
# enough to fit their data, and slow down fitting in shorter ones.
MIN_AUGMENTED_IMAGES = 100_000


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
        learning_rate_scaling: how a run's batch size scales
            `base_learning_rate`: `"constant"` (not at all: the package's
            default, measured on short runs), by the `"fourth_root"` of the
            batch ratio, its `"sqrt"` (timm's rule for adaptive optimizers)
            or `"linear"`ly (SGD's).
        reference_examples: training images of the data set the recipe was
            published for; its augmentation is at full strength for a run
            that sees `reference_examples * epochs` images (None: always).
        scale_augmentation: whether a run scales RandAugment, MixUp and
            CutMix by its size (`augmentation_strength`).
        norm_momentum: BatchNormalization momentum, or None to derive it from
            the run's steps per epoch (`norm_momentum_for`).
        ema_momentum: None, or the momentum of an exponential moving average
            of the weights (Keras's `use_ema`), which is what is validated
            and saved.
        gradient_accumulation_steps: int >= 1, batches whose mean gradient
            makes one optimizer update (Keras's
            `gradient_accumulation_steps`; 1: every batch updates).
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
    learning_rate_scaling: str = "constant"
    reference_examples: int = None
    scale_augmentation: bool = True
    norm_momentum: float = None
    ema_momentum: float = None
    gradient_accumulation_steps: int = 1

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


def _optional(check):
    return lambda name, value: None if value is None else check(name, value)


def _check_scaling(name, value):
    return check_choice(name, value, tuple(LEARNING_RATE_SCALING))


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
    "clipnorm": _optional(_check_positive),
    "learning_rate_scaling": _check_scaling,
    "reference_examples": _optional(check_positive_int),
    "scale_augmentation": check_bool,
    "norm_momentum": _optional(check_rate),
    "ema_momentum": _optional(check_rate),
    "gradient_accumulation_steps": check_positive_int,
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
        reference_examples=IMAGENET_TRAIN_IMAGES,
        source="Wightman et al. 2021, ResNet strikes back, A3 (arXiv:2110.00476)",
    ),
    # Liu et al., 2022, "A ConvNet for the 2020s", Table 5 (ImageNet-1K, 300
    # epochs): AdamW lr 4e-3 at batch 4096, wd 0.05, 20 warmup epochs, label
    # smoothing 0.1, RandAugment m9, mixup 0.8, cutmix 1.0. Stochastic depth
    # per variant: the model table's (`CONVNEXT_DROP_PATH_RATES`); variants
    # without a published ImageNet-1K rate (atto ... nano, xlarge) train
    # without drop path unless a run sets one.
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
            f"convnext_{variant}": rate for variant, rate in CONVNEXT_DROP_PATH_RATES.items()
        },
        reference_examples=IMAGENET_TRAIN_IMAGES,
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

# The recipe of every segmentation model; classification models use the
# recipe named after their family, where there is one.
_SEGMENTATION_RECIPE = "unet"
# timm's RandAugment ("rand-m9-n2"): two operations per image, magnitudes on a
# 0-10 scale, which Keras's `RandAugment(factor=...)` takes as 0-1.
RANDAUGMENT_OPS = 2
RANDAUGMENT_MAX_MAGNITUDE = 10


def recipe_for(model_name, name=None):
    """The recipe of a registered model, with the drop-path rate of its
    variant.

    Args:
        model_name: a name from `keras_cvlec.list_models()`.
        name: a key of `RECIPES`; defaults to the model's registry family
            (`model_info(model_name).family`) for classification models,
            `"resnet"` or `"convnext"`, and `"unet"` for every segmentation
            model.

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
    info = model_info(model_name)
    if info.task == "segmentation":
        return _SEGMENTATION_RECIPE
    if info.task != "classification" or info.family not in RECIPES:
        raise ValueError(
            f"No training recipe for model_name={model_name!r} (task {info.task!r}, "
            f"family {info.family!r}). Recipes exist for classification ResNets and "
            f"ConvNeXts and for segmentation models."
        )
    return info.family


def scaled_learning_rate(recipe, batch_size):
    """The recipe's peak learning rate at `batch_size`: `base_learning_rate`
    times `(batch_size / reference_batch_size) ** exponent`, the exponent of
    its `learning_rate_scaling` rule (0, 1/4, 1/2 or 1).

    Example:

    >>> scaled_learning_rate(RECIPES["resnet"], 32)  # "constant": the recipe's
    0.008
    >>> sqrt = RECIPES["resnet"].with_options(learning_rate_scaling="sqrt")
    >>> scaled_learning_rate(sqrt, 32)  # 8e-3 * (32 / 2048) ** 0.5
    0.001
    """
    batch_size = check_positive_int("batch_size", batch_size)
    exponent = LEARNING_RATE_SCALING[recipe.learning_rate_scaling]
    return recipe.base_learning_rate * (batch_size / recipe.reference_batch_size) ** exponent


def augmentation_strength(recipe, images_seen):
    """The fraction of its RandAugment, MixUp and CutMix strengths a recipe
    uses in a run that sees `images_seen` training images (images x epochs).

    0 up to `MIN_AUGMENTED_IMAGES`, 1 from the recipe's own
    `reference_examples * epochs`, log-linear in between; 1 when the recipe
    does not scale its augmentation or names no reference data set.

    Example:

    >>> augmentation_strength(RECIPES["resnet"], 1_300 * 15)  # a small data set
    0.0
    >>> round(augmentation_strength(RECIPES["resnet"], 50_000 * 100), 2)  # CIFAR-10
    0.55
    """
    images_seen = check_positive_int("images_seen", images_seen)
    if not recipe.scale_augmentation or recipe.reference_examples is None:
        return 1.0
    full = recipe.reference_examples * recipe.epochs
    if images_seen <= MIN_AUGMENTED_IMAGES:
        return 0.0
    return min(
        1.0, math.log(images_seen / MIN_AUGMENTED_IMAGES) / math.log(full / MIN_AUGMENTED_IMAGES)
    )


def norm_momentum_for(steps_per_epoch):
    """A BatchNormalization momentum whose moving statistics average over
    about a tenth of an epoch: `1 - 10 / steps_per_epoch`, within
    `[0.9, 0.99]` (PyTorch's default and Keras's).

    Keras's 0.99 averages over ~100 steps: a run of 20 steps an epoch then
    validates with statistics that are still mostly their initial values.

    Example:

    >>> norm_momentum_for(20), norm_momentum_for(200), norm_momentum_for(5000)
    (0.9, 0.95, 0.99)
    """
    steps_per_epoch = check_positive_int("steps_per_epoch", steps_per_epoch)
    return round(min(0.99, max(0.9, 1.0 - 10.0 / steps_per_epoch)), 4)


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
    check_choice("task", task, TRAINABLE_TASKS)
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


@dataclasses.dataclass(frozen=True)
class RunRecipe:
    """A recipe resolved for one run (see `resolve_recipe`).

    Attributes:
        recipe: the recipe, its RandAugment/MixUp/CutMix strengths scaled by
            `augmentation_strength`.
        batch_size: the run's batch size.
        steps_per_epoch: batches per epoch.
        epochs: epochs of the run.
        learning_rate: AdamW's peak learning rate.
        learning_rate_source: how `learning_rate` was derived, in words.
        warmup_steps: optimizer updates of linear warm-up (batches divided
            by the recipe's `gradient_accumulation_steps`).
        augmentation_strength: the fraction of the recipe's augmentation
            strengths in use.
        norm_momentum: the BatchNormalization momentum of the run.
    """

    recipe: Recipe
    batch_size: int
    steps_per_epoch: int
    epochs: int
    learning_rate: float
    learning_rate_source: str
    warmup_steps: int
    augmentation_strength: float
    norm_momentum: float

    @property
    def total_steps(self):
        """Batches of the run."""
        return self.steps_per_epoch * self.epochs

    @property
    def total_updates(self):
        """Optimizer updates of the run: a batch each, or one every
        `gradient_accumulation_steps` batches (a remainder is not applied)."""
        return self.total_steps // self.recipe.gradient_accumulation_steps

    @property
    def effective_batch_size(self):
        """Images per optimizer update."""
        return self.batch_size * self.recipe.gradient_accumulation_steps

    def optimizer(self, model):
        """The run's built `keras.optimizers.AdamW` for `model`."""
        return make_optimizer(
            learning_rate=self.learning_rate,
            weight_decay=self.recipe.weight_decay,
            total_steps=self.total_updates,
            warmup_steps=self.warmup_steps,
            model=model,
            clipnorm=self.recipe.clipnorm,
            ema_momentum=self.recipe.ema_momentum,
            gradient_accumulation_steps=self.recipe.gradient_accumulation_steps,
        )

    def augmentation(self, task, *, num_classes, seed=None):
        """`recipe_augmentation` at the run's strengths (None for none)."""
        return recipe_augmentation(self.recipe, task, num_classes=num_classes, seed=seed)

    def set_norm_momentum(self, model):
        """Sets the momentum of every BatchNormalization layer of `model`
        (nested ones too) to `norm_momentum`; returns how many were set."""
        layers = [
            layer
            for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        for layer in layers:
            layer.momentum = self.norm_momentum
        return len(layers)

    def augmentation_text(self, task):
        """The run's augmentation in words."""
        recipe = self.recipe
        if not recipe.augment:
            return "none"
        if task == "segmentation":
            return "flip, shift and zoom (image and mask)"
        parts = ["flip", "shift"]
        parts.append(
            f"RandAugment {RANDAUGMENT_OPS} ops magnitude {recipe.randaugment_magnitude}"
            if recipe.randaugment_magnitude
            else "RandAugment off"
        )
        parts.append(f"CutMix {recipe.cutmix_alpha:g}" if recipe.cutmix_alpha else "CutMix off")
        parts.append(f"MixUp {recipe.mixup_alpha:g}" if recipe.mixup_alpha else "MixUp off")
        return ", ".join(parts)

    def summary(self, task):
        """A short block of text: what the run uses and how it was derived."""
        recipe = self.recipe
        images_seen = self.total_steps * self.batch_size
        warmup_share = self.warmup_steps / self.total_updates
        strength = ""
        if task == "classification" and recipe.augment and recipe.reference_examples:
            strength = (
                f" (strength {self.augmentation_strength:.2f} of the recipe's, "
                f"for {images_seen:,} images seen)"
            )
        lines = [
            f"recipe {recipe.name!r} resolved for this run ({recipe.source or 'no source'}):",
            f"  learning rate    {self.learning_rate:.3g} ({self.learning_rate_source}), "
            f"AdamW, cosine decay over {self.total_updates} steps",
            f"  warm-up          {self.warmup_steps} steps ({warmup_share:.0%} of the run)",
            f"  augmentation     {self.augmentation_text(task)}{strength}",
            f"  label smoothing  {recipe.label_smoothing:g}, drop path {recipe.drop_path_rate:g}, "
            f"weight decay {recipe.weight_decay:g}",
            f"  BatchNorm        momentum {self.norm_momentum:g} "
            f"({self.steps_per_epoch} steps an epoch)",
            f"  weight EMA       {recipe.ema_momentum if recipe.ema_momentum else 'off'}",
        ]
        if recipe.gradient_accumulation_steps > 1:
            lines.insert(
                2,
                f"  accumulation     {recipe.gradient_accumulation_steps} batches of "
                f"{self.batch_size} a step (batch {self.effective_batch_size})",
            )
        return "\n".join(lines)

    def to_json(self):
        """The resolved values as a JSON-ready dict (for `run.json`)."""
        recipe = self.recipe
        return {
            "learning_rate": self.learning_rate,
            "learning_rate_source": self.learning_rate_source,
            "batch_size": self.batch_size,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "gradient_accumulation_steps": recipe.gradient_accumulation_steps,
            "effective_batch_size": self.effective_batch_size,
            "total_updates": self.total_updates,
            "warmup_steps": self.warmup_steps,
            "augmentation_strength": self.augmentation_strength,
            "randaugment_magnitude": recipe.randaugment_magnitude,
            "mixup_alpha": recipe.mixup_alpha,
            "cutmix_alpha": recipe.cutmix_alpha,
            "label_smoothing": recipe.label_smoothing,
            "drop_path_rate": recipe.drop_path_rate,
            "weight_decay": recipe.weight_decay,
            "norm_momentum": self.norm_momentum,
            "ema_momentum": recipe.ema_momentum,
        }


def resolve_recipe(recipe, *, batch_size, steps_per_epoch, epochs, learning_rate=None):
    """What a run of a recipe uses, derived from the run (see the module
    docstring).

    Args:
        recipe: a `Recipe`.
        batch_size: int >= 1, the run's batch size.
        steps_per_epoch: int >= 1, batches per epoch.
        epochs: int >= 1, epochs of the run.
        learning_rate: None (the recipe's, scaled to the effective batch
            `batch_size * recipe.gradient_accumulation_steps`) or the peak
            learning rate, a finite float > 0.

    Returns:
        A `RunRecipe`.

    Example:

    >>> run = resolve_recipe(RECIPES["resnet"], batch_size=32,
    ...     steps_per_epoch=41, epochs=15)
    >>> run.learning_rate, run.warmup_steps, run.recipe.mixup_alpha, run.norm_momentum
    (0.008, 31, 0.0, 0.9)
    """
    batch_size = check_positive_int("batch_size", batch_size)
    steps_per_epoch = check_positive_int("steps_per_epoch", steps_per_epoch)
    total_steps = steps_per_epoch * check_positive_int("epochs", epochs)
    accumulation = recipe.gradient_accumulation_steps
    if accumulation > total_steps:
        raise ValueError(
            f"`gradient_accumulation_steps` must be at most the run's {total_steps} batches "
            f"({steps_per_epoch} an epoch x {epochs} epochs). Received: "
            f"gradient_accumulation_steps={accumulation}"
        )
    # Counted in optimizer updates, the batches of `accumulation` batches.
    updates_per_epoch = steps_per_epoch / accumulation
    total_updates = total_steps // accumulation
    if learning_rate is None:
        learning_rate = scaled_learning_rate(recipe, batch_size * accumulation)
        exponent = LEARNING_RATE_SCALING[recipe.learning_rate_scaling]
        source = (
            f"the recipe's rate at batch {recipe.reference_batch_size}, not scaled"
            if exponent == 0
            else f"{recipe.base_learning_rate:g} x ({batch_size * accumulation} / "
            f"{recipe.reference_batch_size}) ** {exponent:g}"
        )
    else:
        learning_rate = check_float("learning_rate", learning_rate, 0.0, inclusive=False)
        source = "set by learning_rate"
    warmup_steps = min(
        round(recipe.warmup_epochs * updates_per_epoch),
        round(total_updates * recipe.warmup_epochs / recipe.epochs),
        total_updates // 2,
    )
    strength = augmentation_strength(recipe, total_steps * batch_size)
    scaled = dataclasses.replace(
        recipe,
        randaugment_magnitude=round(recipe.randaugment_magnitude * strength),
        mixup_alpha=round(recipe.mixup_alpha * strength, 2),
        cutmix_alpha=round(recipe.cutmix_alpha * strength, 2),
    )
    momentum = (
        recipe.norm_momentum
        if recipe.norm_momentum is not None
        else norm_momentum_for(steps_per_epoch)
    )
    return RunRecipe(
        recipe=scaled,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        learning_rate=learning_rate,
        learning_rate_source=source,
        warmup_steps=warmup_steps,
        augmentation_strength=strength,
        norm_momentum=momentum,
    )


def recipe_optimizer(recipe, *, model, batch_size, steps_per_epoch, epochs, learning_rate=None):
    """The AdamW optimizer of a recipe for a run (`resolve_recipe(...)
    .optimizer(model)`): the recipe's learning rate scaled to `batch_size`,
    its weight decay (not on the model's biases and normalisation
    parameters), warm-up capped to the run's length, clipping and EMA.

    Args:
        recipe: a `Recipe`.
        model: the model to train (built; the optimizer is built for it).
        batch_size: int >= 1, the run's batch size.
        steps_per_epoch: int >= 1, batches per epoch.
        epochs: int >= 1, epochs of the run.
        learning_rate: None (the recipe's, scaled) or the peak learning rate.

    Returns:
        A built `keras.optimizers.AdamW`.

    Example:

    >>> optimizer = recipe_optimizer(RECIPES["resnet"], model=model,
    ...     batch_size=256, steps_per_epoch=100, epochs=10)  # doctest: +SKIP
    """
    return resolve_recipe(
        recipe,
        batch_size=batch_size,
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        learning_rate=learning_rate,
    ).optimizer(model)
