"""Training: the optimizer and schedule, the recipes, and `train`,
`evaluate` and `predict` behind the `keras-cvlec` commands.

`prepare_training` sets a run up (data, recipe resolved for the run, model
and optimizer); `run_training` trains it into a run folder, and `train` does
both. `resolve_distribution` spreads a run, or a user's own `fit`, over the
devices and processes (`check_processes`).
"""

from keras_cvlec.training.distribution import (
    DISTRIBUTIONS,
    Distribution,
    check_processes,
    resolve_distribution,
)
from keras_cvlec.training.files import save_model_atomically
from keras_cvlec.training.loading import TrainedModel, load_trained_model
from keras_cvlec.training.objectives import compile_arguments
from keras_cvlec.training.optimizer import (
    PerUpdateSchedule,
    cosine_schedule,
    make_optimizer,
    weight_decay_exclusions,
)
from keras_cvlec.training.predict import predict
from keras_cvlec.training.recipes import (
    RECIPES,
    Recipe,
    RunRecipe,
    augmentation_strength,
    norm_momentum_for,
    recipe_augmentation,
    recipe_for,
    recipe_optimizer,
    resolve_recipe,
    scaled_learning_rate,
)
from keras_cvlec.training.run import (
    TrainingRun,
    evaluate,
    prepare_training,
    run_training,
    train,
)

__all__ = [
    "DISTRIBUTIONS",
    "Distribution",
    "PerUpdateSchedule",
    "RECIPES",
    "Recipe",
    "RunRecipe",
    "TrainedModel",
    "TrainingRun",
    "augmentation_strength",
    "check_processes",
    "compile_arguments",
    "cosine_schedule",
    "evaluate",
    "load_trained_model",
    "make_optimizer",
    "norm_momentum_for",
    "predict",
    "prepare_training",
    "recipe_augmentation",
    "recipe_for",
    "recipe_optimizer",
    "resolve_distribution",
    "resolve_recipe",
    "run_training",
    "save_model_atomically",
    "scaled_learning_rate",
    "train",
    "weight_decay_exclusions",
]
