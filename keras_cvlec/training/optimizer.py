"""AdamW with a warmup + cosine schedule, without weight decay on biases,
normalisation parameters and layer-scale gammas (the ConvNeXt/timm recipe),
optionally accumulating the gradients of several batches per update."""

import keras

from keras_cvlec.utils.validation import check_float, check_positive_int, check_rate

__all__ = ["PerUpdateSchedule", "cosine_schedule", "make_optimizer", "weight_decay_exclusions"]


@keras.saving.register_keras_serializable(package="keras_cvlec")
class PerUpdateSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning-rate schedule counted in optimizer updates under gradient
    accumulation.

    With `gradient_accumulation_steps=n`, Keras calls the schedule with the
    number of batches seen (Keras 3.15 passes `optimizer._iterations`, not
    `optimizer.iterations`), and applies an update every `n` of them. This
    calls `schedule` with the number of updates applied, `step // n`, so
    that `n` batches of `b` images follow the schedule of one batch of
    `n * b`.

    Args:
        schedule: a `LearningRateSchedule` over updates.
        steps: int >= 1, batches per update.

    Example:

    >>> schedule = PerUpdateSchedule(cosine_schedule(learning_rate=1.0,
    ...     total_steps=10, warmup_steps=5), steps=4)
    >>> [round(float(schedule(step)), 3) for step in (3, 4, 7, 8)]
    [0.0, 0.2, 0.2, 0.4]
    """

    def __init__(self, schedule, steps):
        self.schedule = schedule
        self.steps = check_positive_int("steps", steps)

    def __call__(self, step):
        return self.schedule(keras.ops.floor_divide(step, self.steps))

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule), "steps": self.steps}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


def weight_decay_exclusions(model):
    """The trainable variables of `model` that should not be weight-decayed.

    These are the variables with at most one dimension: biases, the scales
    and offsets of batch, layer, group and channel normalisation, and
    `LayerScale` gammas. Decaying them pulls normalised activations towards
    zero without regularising anything (timm's `param_groups_weight_decay`
    uses the same rule; keras #16201).

    Args:
        model: a built `keras.Model` (or layer).

    Returns:
        A list of `keras.Variable`s.

    Example:

    >>> model = keras_cvlec.build_resnet("resnet18", num_classes=10,
    ...     input_shape=(32, 32, 3))
    >>> sorted({v.name for v in weight_decay_exclusions(model)})
    ['beta', 'bias', 'gamma']
    """
    return [v for v in model.trainable_variables if len(v.shape) <= 1]


def cosine_schedule(
    *, learning_rate, total_steps, warmup_steps=0, initial_learning_rate=0.0, alpha=0.0
):
    """Linear warmup from `initial_learning_rate` to `learning_rate` over
    `warmup_steps`, then cosine decay to `alpha * learning_rate` at
    `total_steps` (Keras's `CosineDecay` with `warmup_target`).

    Args:
        learning_rate: float > 0, the peak learning rate.
        total_steps: int >= 1, optimizer steps of the whole run.
        warmup_steps: int in `[0, total_steps)`.
        initial_learning_rate: float >= 0, the learning rate at step 0.
        alpha: float >= 0, the final learning rate as a fraction of the peak.

    Returns:
        A `keras.optimizers.schedules.CosineDecay`.
    """
    learning_rate = check_float("learning_rate", learning_rate, 0.0, inclusive=False)
    total_steps = check_positive_int("total_steps", total_steps)
    warmup_steps = check_positive_int("warmup_steps", warmup_steps, minimum=0)
    if warmup_steps >= total_steps:
        raise ValueError(
            f"`warmup_steps` must be less than `total_steps`={total_steps}. "
            f"Received: warmup_steps={warmup_steps}"
        )
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=check_float("initial_learning_rate", initial_learning_rate, 0.0),
        decay_steps=total_steps - warmup_steps,
        alpha=check_float("alpha", alpha, 0.0),
        warmup_target=learning_rate,
        warmup_steps=warmup_steps,
    )


def make_optimizer(
    *,
    learning_rate,
    weight_decay,
    total_steps,
    warmup_steps=0,
    model=None,
    clipnorm=None,
    initial_learning_rate=0.0,
    alpha=0.0,
    ema_momentum=None,
    gradient_accumulation_steps=1,
):
    """`keras.optimizers.AdamW` on a warmup + cosine schedule.

    Args:
        learning_rate: float > 0, the peak learning rate (after warmup).
        weight_decay: float >= 0, decoupled weight decay; each update shrinks
            a decayed variable by `learning_rate(update) * weight_decay`.
        total_steps: int >= 1, optimizer updates of the whole run (batches
            divided by `gradient_accumulation_steps`).
        warmup_steps: int in `[0, total_steps)`, linear warmup updates.
        model: if given, `weight_decay_exclusions(model)` are excluded from
            weight decay and the optimizer is built for the model's
            trainable variables (built inside the first training step, it
            makes TensorFlow trace that step twice).
        clipnorm: optional float > 0, clips each gradient to this norm.
        initial_learning_rate: float >= 0, the learning rate at step 0.
        alpha: float >= 0, the final learning rate as a fraction of the peak.
        ema_momentum: None, or a float in `[0, 1)`: keep an exponential
            moving average of the weights (Keras's `use_ema`); with
            `keras.callbacks.SwapEMAWeights` it is what is evaluated, and
            `fit` ends with it in the model. Per update: under gradient
            accumulation the average moves at every batch with momentum
            `ema_momentum ** (1 / gradient_accumulation_steps)`.
        gradient_accumulation_steps: int >= 1, batches whose mean gradient
            makes one update (Keras's `gradient_accumulation_steps`): `n`
            batches of `b` images update as one batch of `n * b` (the
            schedule counts updates, see `PerUpdateSchedule`).

    Returns:
        A `keras.optimizers.AdamW`.

    Example:

    >>> optimizer = make_optimizer(learning_rate=1e-3, weight_decay=0.05,
    ...     total_steps=1000, warmup_steps=100)
    >>> float(optimizer.learning_rate)  # step 0: the start of the warmup
    0.0
    """
    schedule = cosine_schedule(
        learning_rate=learning_rate,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        initial_learning_rate=initial_learning_rate,
        alpha=alpha,
    )
    if clipnorm is not None:
        clipnorm = check_float("clipnorm", clipnorm, 0.0, inclusive=False)
    steps = check_positive_int("gradient_accumulation_steps", gradient_accumulation_steps)
    if ema_momentum is not None:
        ema_momentum = check_rate("ema_momentum", ema_momentum) ** (1 / steps)
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule if steps == 1 else PerUpdateSchedule(schedule, steps),
        weight_decay=check_float("weight_decay", weight_decay, 0.0),
        clipnorm=clipnorm,
        use_ema=ema_momentum is not None,
        ema_momentum=0.99 if ema_momentum is None else ema_momentum,
        gradient_accumulation_steps=None if steps == 1 else steps,
    )
    if model is not None:
        optimizer.exclude_from_weight_decay(var_list=weight_decay_exclusions(model))
        optimizer.build(model.trainable_variables)
    return optimizer
