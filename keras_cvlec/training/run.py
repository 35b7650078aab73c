"""`train` and `evaluate`: the library functions behind `keras-cvlec train`
and `keras-cvlec evaluate`. `train` is `prepare_training` (the one set-up of a
run: data, recipe resolved for the run, model and optimizer, also used by the
scripts in `examples/`) followed by `run_training`.

A run lives in one folder:

    run.json        model, data set and arguments (checked by `resume`)
    best.keras      the model of the best validation epoch
    last.keras      the model after the last epoch
    log.csv         one row of metrics per epoch (Keras's CSVLogger)
    logs/           TensorBoard logs (with the tensorboard package installed)
    backup/         BackupAndRestore state while the run is unfinished
    metrics.json    best.keras evaluated on the validation and test splits
    curves.png      learning curves
    predictions.png test images with true and predicted masks or labels
"""

import dataclasses
import importlib.util
import inspect
import json
import os
import shutil
import tempfile
import warnings

import keras
import numpy as np

from keras_cvlec.data import (
    TFDS_DATASETS,
    ArrayDataset,
    list_datasets,
    load_dataset,
    map_batches,
    shard_batches,
)
from keras_cvlec.data.options import resolve_transform
from keras_cvlec.models.registry import build_model, list_models, model_task
from keras_cvlec.tasks import TRAINABLE_TASKS
from keras_cvlec.training import callbacks as run_callbacks
from keras_cvlec.training.distribution import (
    Distribution,
    check_distribution,
    check_processes,
    resolve_distribution,
)
from keras_cvlec.training.files import check_output_folder, read_json, write_json
from keras_cvlec.training.loading import RUN_FILE, load_trained_model
from keras_cvlec.training.objectives import OUTPUT_ACTIVATION_ARGUMENTS, compile_arguments
from keras_cvlec.training.plots import plot_learning_curves, plot_per_class, plot_predictions
from keras_cvlec.training.recipes import Recipe, RunRecipe, recipe_for, resolve_recipe
from keras_cvlec.training.report import class_report
from keras_cvlec.utils.validation import (
    check_bool,
    check_choice,
    check_float,
    check_image_size,
    check_optional_dict,
    check_path,
    check_positive_int,
    check_seed,
)

__all__ = [
    "METRICS_FILE",
    "MIXED_PRECISION_POLICIES",
    "MONITORS",
    "TrainingRun",
    "evaluate",
    "prepare_training",
    "run_training",
    "train",
]

METRICS_FILE = "metrics.json"
# Keras's `fit` verbosity.
VERBOSITIES = ("auto", 0, 1, 2)
# The validation metric that picks best.keras.
MONITORS = {"classification": "val_accuracy", "segmentation": "val_mean_iou"}
MIXED_PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")
# Arguments that may differ when a run is resumed: they change how or where
# from, not what, is computed.
_RESUME_FREE_ARGS = ("jit_compile", "data_dir", "distribution")


@dataclasses.dataclass
class TrainingRun:
    """A checked run with its data and compiled model, ready to train: what
    `prepare_training` returns.

    Attributes:
        model_name: the registered model name.
        task: `"classification"` or `"segmentation"`.
        args: the checked arguments of `prepare_training`, as `run.json`
            records them.
        info: the data set's `DatasetInfo` (training split).
        plan: the `RunRecipe` resolved for the run: learning rate, warm-up
            capped to the run, augmentation strength, BatchNorm momentum.
        model: the built model, compiled with the plan's optimizer and the
            task's loss and metrics (`compile_arguments`).
        data: `{"train", "validation", "test"}` datasets (None for a split
            the data set lacks); `"train"` is shuffled and augmented as the
            plan says.
        from_logits: whether the model outputs logits.
        output_dir: the run folder, or None (no run folder: the caller fits
            and saves the model itself).
        resume: whether the run continues the unfinished run in `output_dir`.
        distribution: the `Distribution` the model was built on; fit and
            evaluate it in `distribution.scope()`.
    """

    model_name: str
    task: str
    args: dict
    info: object
    plan: RunRecipe
    model: keras.Model
    data: dict
    from_logits: bool
    output_dir: str = None
    resume: bool = False
    distribution: Distribution = Distribution("none")

    @property
    def epochs(self):
        """The epochs of the run."""
        return self.args["epochs"]

    def path(self, name):
        """The path of `name` in the run folder."""
        return os.path.join(self.output_dir, name)


def _check_recipe(recipe, model_name, recipe_options):
    if recipe is not None and not isinstance(recipe, (str, Recipe)):
        raise TypeError(
            f"`recipe` must be None, a key of RECIPES or a Recipe. Received: recipe={recipe!r}"
        )
    check_optional_dict("recipe_options", recipe_options)
    if not isinstance(recipe, Recipe):
        recipe = recipe_for(model_name, recipe)
    return recipe.with_options(**(recipe_options or {}))


def _check_mixed_precision(mixed_precision):
    if mixed_precision is False or mixed_precision is None:
        return None
    if mixed_precision is True:
        return "mixed_float16"
    return check_choice("mixed_precision", mixed_precision, MIXED_PRECISION_POLICIES)


def _check_model(model_name):
    check_choice("model_name", model_name, list_models())
    task = model_task(model_name)
    if task not in TRAINABLE_TASKS:
        raise ValueError(
            f"`train` does not support {task} models yet. Received: "
            f"model_name={model_name!r}. Models it trains: "
            f"{', '.join(m for m in list_models() if model_task(m) in TRAINABLE_TASKS)}."
        )
    return task


def _run_args(
    model_name,
    dataset,
    recipe,
    *,
    epochs,
    batch_size,
    image_size,
    learning_rate,
    jit_compile,
    mixed_precision,
    seed,
    num_images,
    model_options,
    backup_every,
    ignore_class,
    skip_bad_files,
    data_dir,
    distribution,
):
    """The checked arguments of a run of `recipe` (a `Recipe`), as
    `run.json` records them."""
    return _as_json(
        {
            "model_name": model_name,
            "dataset": dataset,
            "epochs": recipe.epochs if epochs is None else check_positive_int("epochs", epochs),
            "batch_size": check_positive_int("batch_size", batch_size),
            "image_size": check_image_size(image_size),
            "recipe": dataclasses.asdict(recipe),
            "learning_rate": None
            if learning_rate is None
            else check_float("learning_rate", learning_rate, 0.0, inclusive=False),
            "jit_compile": check_choice("jit_compile", jit_compile, (True, False, "auto")),
            "mixed_precision": _check_mixed_precision(mixed_precision),
            "seed": check_seed("seed", seed),
            "num_images": None
            if num_images is None
            else check_positive_int("num_images", num_images),
            "model_options": _check_model_options(model_options),
            "backup_every": None
            if backup_every is None
            else check_positive_int("backup_every", backup_every),
            "ignore_class": ignore_class,
            "skip_bad_files": check_bool("skip_bad_files", skip_bad_files),
            "data_dir": None if data_dir is None else check_path("data_dir", data_dir),
            "distribution": check_distribution(distribution),
        }
    )


def _unspecified_args(model_name, dataset):
    """The arguments `run.json` records for a run of `model_name` on
    `dataset` that sets no other option (`prepare_training`'s defaults)."""
    defaults = inspect.signature(prepare_training).parameters
    options = {
        name: defaults[name].default
        for name, parameter in inspect.signature(_run_args).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    return _run_args(model_name, dataset, recipe_for(model_name), **options)


def _stored_args(stored, model_name, dataset):
    """`run.json`'s arguments of a run of `model_name` on `dataset`, with
    what a run stored before an option or a `Recipe` field existed lacks
    filled in: the value stored for an option that is not set, the field's
    default."""
    args = {**_unspecified_args(model_name, dataset), **stored}
    recipe = dict(args["recipe"])
    for field in dataclasses.fields(Recipe):
        if field.default_factory is not dataclasses.MISSING:
            recipe.setdefault(field.name, field.default_factory())
        elif field.default is not dataclasses.MISSING:
            recipe.setdefault(field.name, field.default)
    return {**args, "recipe": _as_json(recipe)}


def _check_run_folder(output_dir, args, resume):
    """Refuses to overwrite a run, or to resume one of other settings (an
    option or recipe field the run's `run.json` lacks is at its default)."""
    run_file = os.path.join(output_dir, RUN_FILE)
    check_output_folder("output_dir", output_dir)
    if not resume:
        if os.path.exists(run_file):
            stored = read_json(run_file)["args"]
            finished = os.path.exists(os.path.join(output_dir, METRICS_FILE))
            raise ValueError(
                f"`output_dir` {output_dir!r} already holds a "
                f"{'finished ' if finished else ''}run ({stored['model_name']} on "
                f"{stored['dataset']}). "
                f"{'Choose' if finished else 'Resume it with resume=True (--resume), or choose'} "
                "another output_dir."
            )
        if os.path.isdir(output_dir) and os.listdir(output_dir):
            raise ValueError(
                f"`output_dir` {output_dir!r} is a folder with files in it that is not a "
                f"run (no {RUN_FILE}): nothing of yours is overwritten. Choose a new or "
                f"empty folder."
            )
        return
    if not os.path.exists(run_file):
        raise ValueError(
            f"resume=True but `output_dir` {output_dir!r} holds no run (no {RUN_FILE})."
        )
    stored = _stored_args(read_json(run_file)["args"], args["model_name"], args["dataset"])
    if os.path.exists(os.path.join(output_dir, METRICS_FILE)):
        raise ValueError(
            f"The run in {output_dir!r} has finished ({METRICS_FILE} exists): nothing "
            f"to resume. Choose another output_dir for a new run."
        )
    differences = [
        f"{key}={args[key]!r} (the run has {stored[key]!r})"
        for key in args
        if key not in _RESUME_FREE_ARGS and stored[key] != args[key]
    ]
    if differences:
        raise ValueError(
            f"Cannot resume the run in {output_dir!r} with other settings: "
            f"{'; '.join(differences)}."
        )


def _num_batches(dataset, info, batch_size, num_images, num_devices=1):
    """Batches per epoch that `fit` gets of a training split, counted without
    running its pipeline (decoding, augmentation).

    An `ArrayDataset` counts its batches. A `tf.data.Dataset` counts
    `info.num_examples`, else its known cardinality, else `num_images` (the
    loader takes at most that many) in batches of `batch_size`; a split that
    tells none of them is refused. On several devices a last batch of fewer
    than `num_devices` examples is left out, as
    `Distribution.distribute_data` does (a split that tells only its
    cardinality is counted whole)."""
    if isinstance(dataset, ArrayDataset):
        return len(shard_batches(dataset, 1, 0, multiple=num_devices))
    if num_devices == 1 or info.num_examples is None:
        try:
            return len(dataset)
        except TypeError:  # a tf.data.Dataset of unknown cardinality
            pass
    examples = info.num_examples if info.num_examples is not None else num_images
    if examples is None:
        raise ValueError(
            f"The training split of {info.name!r} does not tell its size (unknown "
            f"cardinality and no DatasetInfo.num_examples), which the learning-rate "
            f"schedule needs. Pass num_images=... to bound it."
        )
    full_batches, rest = divmod(examples, batch_size)
    return full_batches + (rest >= num_devices)


def _channels(dataset):
    """The image channels of a split: from a `tf.data.Dataset`'s element
    spec, else from its first batch."""
    spec = getattr(dataset, "element_spec", None)
    if spec is not None and spec[0].shape[-1] is not None:
        return int(spec[0].shape[-1])
    return _first_batch(dataset)[0].shape[-1]


def _first_batch(dataset):
    if isinstance(dataset, keras.utils.PyDataset):
        images, targets = dataset[0]
    else:
        images, targets = next(iter(dataset))
    return np.asarray(images), np.asarray(targets)


def _one_hot_targets(task, recipe):
    """Whether a run trains on one-hot targets: MixUp and CutMix blend the
    labels of a classification batch."""
    return task == "classification" and recipe.mixes_labels


def _load_data(dataset, task, args, recipe, num_devices):
    """The train, validation and test splits (None for a split the data set
    lacks), the data set's info and the recipe resolved for the run, whose
    steps are the batches `fit` gets on `num_devices` devices."""
    options = dict(
        task=task,
        image_size=args["image_size"],
        batch_size=args["batch_size"],
        num_images=args["num_images"],
        seed=args["seed"],
        ignore_class=args["ignore_class"],
        skip_bad_files=args["skip_bad_files"],
        data_dir=args["data_dir"],
    )
    # The training split first: its size decides the learning rate, warm-up
    # and augmentation strength, and so whether targets are one-hot.
    train, info = load_dataset(dataset, "train", **options)
    plan = resolve_recipe(
        recipe,
        batch_size=args["batch_size"],
        steps_per_epoch=_num_batches(
            train, info, args["batch_size"], args["num_images"], num_devices
        ),
        epochs=args["epochs"],
        learning_rate=args["learning_rate"],
    )
    one_hot = _one_hot_targets(task, plan.recipe)
    data = {
        split: load_dataset(dataset, split, one_hot=one_hot, **options)[0]
        if split in info.splits
        else None
        for split in ("validation", "test")
    }
    augment = plan.augmentation(task, num_classes=info.num_classes, seed=args["seed"])
    transform = resolve_transform(augment or False, one_hot, task, info.num_classes, args["seed"])
    data["train"] = train if transform is None else map_batches(train, transform)
    return data, info, plan


def _build(model_name, task, info, channels, recipe, model_options, policy):
    """The model for the data set, and whether it outputs logits."""
    options = {OUTPUT_ACTIVATION_ARGUMENTS[task]: None, "data_format": "channels_last"}
    if task == "classification":
        options["drop_path_rate"] = recipe.drop_path_rate
    options.update(model_options)
    input_shape = (*info.image_size, channels)
    previous = keras.config.dtype_policy()
    try:
        if policy:
            keras.config.set_dtype_policy(policy)
        model = build_model(
            model_name, input_shape=input_shape, num_classes=info.num_classes, **options
        )
    except (ValueError, TypeError) as error:
        raise type(error)(
            f"Cannot build {model_name!r} for {info.name} (input_shape={input_shape}, "
            f"num_classes={info.num_classes}): {error}"
        ) from error
    finally:
        keras.config.set_dtype_policy(previous)
    return model, options[OUTPUT_ACTIVATION_ARGUMENTS[task]] is None


def _check_model_options(model_options):
    if check_optional_dict("model_options", model_options) is None:
        return {}
    fixed = sorted({"input_shape", "num_classes"} & set(model_options))
    if fixed:
        raise ValueError(
            f"`model_options` cannot set {', '.join(fixed)}: they come from the data set. "
            f"Received: model_options={model_options!r}"
        )
    if model_options.get("data_format", "channels_last") != "channels_last":
        raise ValueError(
            f"`model_options` cannot set data_format={model_options['data_format']!r}: the "
            f"data loaders give channels-last batches. Received: model_options={model_options!r}"
        )
    return dict(model_options)


def prepare_training(
    model_name,
    dataset,
    *,
    epochs=None,
    batch_size=32,
    image_size=None,
    recipe=None,
    recipe_options=None,
    learning_rate=None,
    jit_compile="auto",
    mixed_precision=False,
    output_dir=None,
    resume=False,
    seed=0,
    num_images=None,
    model_options=None,
    backup_every=None,
    ignore_class=255,
    skip_bad_files=False,
    data_dir=None,
    distribution=None,
    job_addresses=None,
    num_processes=None,
    process_id=None,
):
    """Checks every argument, loads the data, resolves the recipe and builds
    and compiles the model: all that `train` does before training, and all
    that can fail on bad input.

    The one place a run is set up: `train` passes the result to
    `run_training`, which fits it and writes the run folder; a script can
    instead fit `run.model` on `run.data` itself (see `examples/`).

    Args:
        Those of `train` (less `verbose`), except that `output_dir` may be
        None: no run folder (then `resume` and `backup_every` are refused),
        for a caller that fits and saves `run.model` itself.

    Returns:
        A `TrainingRun`.

    Example:

    >>> run = prepare_training("unet", "shapes", epochs=2, image_size=32,
    ...     model_options={"filters": 8, "depth": 2})  # doctest: +SKIP
    >>> run.model.fit(run.data["train"], validation_data=run.data["validation"],
    ...     epochs=run.epochs)  # doctest: +SKIP
    """
    task = _check_model(model_name)
    if output_dir is not None:
        missing = [name for name in ("matplotlib", "PIL") if importlib.util.find_spec(name) is None]
        if missing:
            raise ImportError(
                f"`train` writes plots and reads images with {' and '.join(missing)}, which "
                f"is not installed: pip install 'keras-cvlec[train]'"
            )
    dataset = check_path("dataset", dataset)
    recipe = _check_recipe(recipe, model_name, recipe_options)
    resume = check_bool("resume", resume)
    if output_dir is None:
        if resume or backup_every is not None:
            raise ValueError(
                f"`resume` and `backup_every` need a run folder (`output_dir`). Received: "
                f"resume={resume}, backup_every={backup_every!r} with output_dir=None"
            )
    else:
        output_dir = check_path("output_dir", output_dir)
    args = _run_args(
        model_name,
        dataset,
        recipe,
        epochs=epochs,
        batch_size=batch_size,
        image_size=image_size,
        learning_rate=learning_rate,
        jit_compile=jit_compile,
        mixed_precision=mixed_precision,
        seed=seed,
        num_images=num_images,
        model_options=model_options,
        backup_every=backup_every,
        ignore_class=ignore_class,
        skip_bad_files=skip_bad_files,
        data_dir=data_dir,
        distribution=distribution,
    )
    processes = dict(
        job_addresses=job_addresses, num_processes=num_processes, process_id=process_id
    )
    # Checked before the processes connect, which waits for all of them (and
    # the chief writes the run folder only after that).
    if output_dir is not None:
        _check_run_folder(output_dir, args, resume)
    if args["seed"] is None and args["distribution"] != "none":
        if check_processes(**processes)[1] > 1:
            raise ValueError(
                "`seed` must be an int when several processes train: each builds the initial "
                "weights and the order of the data from it, which must agree. Received: seed=None"
            )
    spread = resolve_distribution(args["distribution"], **processes)
    if args["batch_size"] % spread.num_devices:
        raise ValueError(
            f"`batch_size` is the global batch, split evenly over the {spread.num_devices} "
            f"devices of distribution={args['distribution']!r}: it must be a multiple of "
            f"{spread.num_devices}. Received: batch_size={args['batch_size']}"
        )
    data, info, plan = _load_data(dataset, task, args, recipe, spread.num_devices)
    keras.utils.set_random_seed(args["seed"] or 0)
    # The channels from a split without augmentation (a first call of
    # RandAugment traces for up to a minute off the TensorFlow backend).
    channels = _channels(data["validation"])
    with spread.scope():
        model, from_logits = _build(
            model_name, task, info, channels, recipe, args["model_options"], args["mixed_precision"]
        )
        plan.set_norm_momentum(model)
        model.compile(
            optimizer=plan.optimizer(model),
            jit_compile=jit_compile,
            **compile_arguments(
                task,
                info.num_classes,
                label_smoothing=plan.recipe.label_smoothing,
                from_logits=from_logits,
                one_hot=_one_hot_targets(task, plan.recipe),
                ignore_class=info.ignore_class,
            ),
        )
    return TrainingRun(
        model_name=model_name,
        task=task,
        args=args,
        info=info,
        plan=plan,
        model=model,
        data=data,
        from_logits=from_logits,
        output_dir=output_dir,
        resume=resume,
        distribution=spread,
    )


def _as_json(data):
    """`data` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(data))


def _callbacks(run):
    monitor = MONITORS[run.task]
    best_so_far = None
    restored_checkpoints = []
    if run.resume:
        run_callbacks.remove_partial_checkpoints(run.output_dir)
        initial_epoch, batch = run_callbacks.backup_progress(run.path("backup"))
        run_callbacks.truncate_log(run.path("log.csv"), initial_epoch)
        values = [
            row[monitor] for row in run_callbacks.read_log(run.path("log.csv")) if monitor in row
        ]
        best_so_far = max(values) if values else None
        epoch_end = batch == run_callbacks.EPOCH_END or run.args["backup_every"] is None
        if initial_epoch > 0 and epoch_end:
            # The backup holds the last logged epoch, whose checkpoints a
            # kill may have cut off.
            restored_checkpoints = [run.path("last.keras")]
            if values and values[-1] > max(values[:-1], default=-np.inf):
                restored_checkpoints.append(run.path("best.keras"))
        elif not epoch_end:
            warnings.warn(
                f"The backup of {run.output_dir!r} was taken after batch {batch + 1} of "
                f"epoch {initial_epoch + 1}. Keras restarts an epoch at its first batch: "
                f"the resumed run trains on those {batch + 1} batches again, so its "
                "weights differ from those of a run not stopped.",
                stacklevel=2,
            )
    ema = run.plan.recipe.ema_momentum is not None
    callbacks = [
        run_callbacks.StopOnNonFiniteLoss(),
        # The log before the backup: a run killed between the two repeats
        # the epoch, whose row `truncate_log` removes on resume.
        keras.callbacks.CSVLogger(run.path("log.csv"), append=run.resume),
        # Two backups: a run killed while writing one restores the other.
        # Before the EMA swap, so that they hold the trained weights.
        run_callbacks.ResumableBackup(
            run.path("backup"),
            save_freq=run.args["backup_every"] or "epoch",
            double_checkpoint=True,
        ),
    ]
    if restored_checkpoints:
        callbacks.append(run_callbacks.RestoredCheckpoints(restored_checkpoints, ema=ema))
    # Epoch e takes the training split in the order of its pass e, also in a
    # resumed run (whose first epoch is the backup's).
    callbacks.append(run_callbacks.EpochOrder(run.data["train"]))
    if ema:
        # Validation and the checkpoints see the averaged weights.
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    callbacks += [
        run_callbacks.AtomicModelCheckpoint(
            run.path("best.keras"),
            monitor=monitor,
            mode="max",
            save_best_only=True,
            initial_value_threshold=best_so_far,
        ),
        run_callbacks.AtomicModelCheckpoint(run.path("last.keras")),
    ]
    # Keras's TensorBoard callback writes through tf.summary.
    if all(importlib.util.find_spec(name) for name in ("tensorboard", "tensorflow")):
        callbacks.append(keras.callbacks.TensorBoard(run.path("logs")))
    else:
        warnings.warn(
            "No TensorBoard logs: they need the tensorboard and tensorflow packages.", stacklevel=2
        )
    return callbacks


def _predicted_classes(model, images):
    # A direct call: `predict` would compile a function for one batch.
    return np.argmax(keras.ops.convert_to_numpy(model(images, training=False)), axis=-1)


def _class_report(run, split):
    return class_report(
        run.model,
        run.data[split],
        num_classes=run.info.num_classes,
        class_names=run.info.class_names,
        task=run.task,
        from_logits=run.from_logits,
        ignore_class=run.info.ignore_class,
    )


def _training_finished(run):
    """Whether a resumed run was killed after its last epoch (the backup is
    removed then) but before its metrics were written."""
    return (
        run.resume
        and not os.path.exists(run.path("backup"))
        and os.path.exists(run.path("last.keras"))
        and len(run_callbacks.read_log(run.path("log.csv"))) >= run.epochs
    )


# What a run writes into its folder (removed again when it fails before its
# first epoch ends).
_RUN_FOLDER_ENTRIES = (RUN_FILE, "log.csv", "backup", "logs", "best.keras", "last.keras")


def _remove_run_files(run, created_folder):
    if created_folder:
        shutil.rmtree(run.output_dir, ignore_errors=True)
        return
    for name in _RUN_FOLDER_ENTRIES:
        path = run.path(name)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.remove(path)


def _fit(run, verbose):
    """`model.fit` with the run's callbacks; a run that fails before its
    first epoch ends leaves no folder behind to block the same command."""
    created_folder = not os.path.exists(run.output_dir)
    os.makedirs(run.output_dir, exist_ok=True)
    if not run.resume:
        write_json(
            run.path(RUN_FILE),
            {
                "args": run.args,
                "task": run.task,
                "from_logits": run.from_logits,
                "data_format": "channels_last",
                "num_classes": run.info.num_classes,
                "class_names": list(run.info.class_names),
                "image_size": list(run.info.image_size),
                "ignore_class": run.info.ignore_class,
                "splits": list(run.info.splits),
                "resolved_recipe": run.plan.to_json(),
                "distribution": run.distribution.to_json(),
                "backend": keras.backend.backend(),
                "keras_version": keras.__version__,
            },
        )
    distribute = run.distribution.distribute_data
    try:
        run.model.fit(
            distribute(run.data["train"]),
            validation_data=None
            if run.data["validation"] is None
            else distribute(run.data["validation"]),
            epochs=run.epochs,
            callbacks=_callbacks(run),
            verbose=verbose,
            # The training split reshuffles itself at every epoch, by seed;
            # Keras's shuffle of the batch order draws from the process's
            # global random state, which a resumed run does not continue.
            shuffle=False,
        )
    except BaseException:
        if not run.resume and not run_callbacks.read_log(run.path("log.csv")):
            _remove_run_files(run, created_folder)
        raise


def run_training(run, verbose="auto"):
    """Trains a run from `prepare_training` and writes its folder; returns
    the metrics of `train`.

    With several processes, each calls this with its own run; only the
    chief (process 0) writes the run folder and prints. The others run the
    same steps (the evaluations after training are steps of every process)
    and write their copies of the files into a temporary folder that is
    removed at the end; when they resume, they copy the chief's backup.

    Args:
        run: a `TrainingRun` prepared with an `output_dir`.
        verbose: Keras's `fit` verbosity; other than 0 the resolved recipe
            is printed first.

    Raises:
        TrainingDivergedError: the loss became NaN or infinite (the best
            model so far stays in the folder; nothing non-finite is saved).
    """
    check_choice("verbose", verbose, VERBOSITIES)
    if run.output_dir is None:
        raise ValueError(
            "`run_training` writes a run folder: prepare the run with "
            "prepare_training(..., output_dir=...). Received: a run with output_dir=None"
        )
    with run.distribution.scope():
        if run.distribution.is_chief:
            return _train_and_report(run, verbose)
        with tempfile.TemporaryDirectory(prefix="keras_cvlec_process") as folder:
            return _train_and_report(_in_folder(run, folder), verbose=0)


# What a resumed run reads of its folder.
_RESUME_STATE = (RUN_FILE, "log.csv", "backup", "best.keras", "last.keras")


def _in_folder(run, folder):
    """`run` writing into `folder`, which gets a copy of the state the run
    resumes from."""
    if run.resume:
        for name in _RESUME_STATE:
            source, copy = run.path(name), os.path.join(folder, name)
            if os.path.isdir(source):
                shutil.copytree(source, copy)
            elif os.path.exists(source):
                shutil.copy2(source, copy)
    return dataclasses.replace(run, output_dir=folder)


def _train_and_report(run, verbose):
    if verbose != 0:
        print(run.plan.summary(run.task))
    if _training_finished(run):
        if verbose != 0:
            print(f"{run.output_dir}: all {run.epochs} epochs were trained; evaluating.")
    else:
        _fit(run, verbose)
    best_path = run.path("best.keras")
    if not os.path.exists(best_path):  # no epoch had a finite validation metric
        best_path = run.path("last.keras")
    # The trained model with the best weights: its compiled functions are
    # reused, where a loaded copy would be traced again.
    run.model.load_weights(best_path)
    held_out = [split for split in ("validation", "test") if run.data[split] is not None]
    metrics = _as_json(
        {
            split: {
                name: float(value)
                for name, value in run.model.evaluate(
                    run.distribution.distribute_data(run.data[split]), return_dict=True, verbose=0
                ).items()
            }
            for split in held_out
        }
    )
    if run.data["test"] is None:
        metrics["test"] = None
        metrics["note"] = (
            f"{run.info.name} has no test split: the validation split is the only held-out data."
        )
    metrics["model"] = os.path.basename(best_path)
    metrics["per_class"] = {split: _class_report(run, split) for split in held_out}
    write_json(run.path(METRICS_FILE), metrics)
    plot_learning_curves(run_callbacks.read_log(run.path("log.csv")), run.path("curves.png"))
    plot_per_class(
        metrics["per_class"][held_out[-1]],
        run.path("per_class.png"),
        title=f"{run.model_name} on {run.info.name}, {held_out[-1]} split",
    )
    images, targets = _first_batch(run.data[held_out[-1]])
    images, targets = images[:8], targets[:8]
    if _one_hot_targets(run.task, run.plan.recipe):
        targets = targets.argmax(-1)
    plot_predictions(
        images,
        targets,
        _predicted_classes(run.model, images),
        run.info.class_names,
        run.path("predictions.png"),
    )
    return metrics


def train(
    model_name,
    dataset,
    *,
    epochs=None,
    batch_size=32,
    image_size=None,
    recipe=None,
    recipe_options=None,
    learning_rate=None,
    jit_compile="auto",
    mixed_precision=False,
    output_dir,
    resume=False,
    seed=0,
    num_images=None,
    model_options=None,
    backup_every=None,
    ignore_class=255,
    skip_bad_files=False,
    data_dir=None,
    distribution=None,
    job_addresses=None,
    num_processes=None,
    process_id=None,
    verbose="auto",
):
    """Trains a registered model on a data set and writes a run folder.

    `prepare_training` checks every argument, the data set and the model
    before training starts, and `run_training` trains. The recipe is resolved for the run (`resolve_recipe`: learning
    rate, warm-up, augmentation strength and BatchNorm momentum from the
    batch size, steps and data set size), printed at the start and recorded
    in `run.json`. The folder (see the module docstring) holds the best and last
    models, a CSV and a TensorBoard log, `metrics.json` and PNG plots. A run
    that was killed continues, from its last backup, with `resume=True`.

    Args:
        model_name: a name from `keras_cvlec.list_models()` (classification
            or segmentation).
        dataset: a name from `keras_cvlec.data.list_datasets()` or a folder.
        epochs: int >= 1; defaults to the recipe's.
        batch_size: int >= 1; the recipe's learning rate is scaled to it.
        image_size: None (the data set's), an int or `(height, width)`.
        recipe: None (`recipe_for(model_name)`), a key of `RECIPES` or a
            `Recipe`.
        recipe_options: None or a dict of recipe fields to change (see
            `Recipe.with_options`), e.g. `{"mixup_alpha": 0.0}`.
        learning_rate: None (the recipe's, scaled to `batch_size`, see
            `resolve_recipe`) or the peak learning rate, a finite float > 0.
        jit_compile: `True`, `False` or `"auto"`, as in `Model.compile`.
        mixed_precision: False, True (`"mixed_float16"`),
            `"mixed_float16"` or `"mixed_bfloat16"`.
        output_dir: the run folder.
        resume: continue the unfinished run in `output_dir` (same arguments).
        seed: int seed (0 to 2**31 - 1) of the weights and the data order.
        num_images: None or the number of images of each split (tiny runs).
        model_options: dict of builder arguments, e.g. `{"filters": 16}`.
        backup_every: None (back up after every epoch) or a number of steps.
        ignore_class: folders only: the mask value of "void" pixels, left
            out of the loss and metrics (255, as VOC and Cityscapes), or
            None to read it as a class.
        skip_bad_files: folders only: leave out unreadable images and masks
            (with a warning) instead of failing before training.
        data_dir: tensorflow-datasets names only: the data directory (None:
            tensorflow-datasets' default).
        distribution: None or `"none"` (one device), `"data-parallel"`
            (every device of every process, JAX and TensorFlow backends;
            `batch_size` is the global batch) or `"auto"` (data-parallel when more than one
            device is visible, or several processes take part), see
            `resolve_distribution`.
        job_addresses: several processes (machines): None (from the
            environment, see `check_processes`) or `"host:port,..."`, process
            0's first (JAX needs only it; TensorFlow every process's).
        num_processes: None (from the environment, else 1) or the number of
            processes, each running `train` with the same arguments but
            its own `process_id`; the batches are split between them.
            Process 0 (the chief) writes the run folder, which the others
            read when resuming (a folder every process sees).
        process_id: None (from the environment) or this process's number,
            0 to `num_processes - 1`.
        verbose: Keras's `fit` verbosity (`"auto"`: a progress bar); 0 on
            every process but the chief.

    Returns:
        A dict `{"validation": {...}, "test": {...}, "model": "best.keras"}`:
        the loss and metrics of the best model on each split (`"test"` is
        None, and a `"note"` says so, for a data set without a test split).

    Raises:
        TrainingDivergedError: the loss became NaN or infinite.

    Example:

    >>> metrics = train("unet", "shapes", epochs=2, image_size=32,
    ...     num_images=16, model_options={"filters": 4, "depth": 2},
    ...     output_dir="runs/unet")  # doctest: +SKIP
    >>> sorted(metrics["test"])  # doctest: +SKIP
    ['accuracy', 'loss', 'mean_iou']
    """
    check_choice("verbose", verbose, VERBOSITIES)
    run = prepare_training(
        model_name,
        dataset,
        epochs=epochs,
        batch_size=batch_size,
        image_size=image_size,
        recipe=recipe,
        recipe_options=recipe_options,
        learning_rate=learning_rate,
        jit_compile=jit_compile,
        mixed_precision=mixed_precision,
        output_dir=output_dir,
        resume=resume,
        seed=seed,
        num_images=num_images,
        model_options=model_options,
        backup_every=backup_every,
        ignore_class=ignore_class,
        skip_bad_files=skip_bad_files,
        data_dir=data_dir,
        distribution=distribution,
        job_addresses=job_addresses,
        num_processes=num_processes,
        process_id=process_id,
    )
    return run_training(run, verbose=verbose)


def _source_options(dataset, options):
    """The entries of `options` (a model's `num_classes`, a run's
    `ignore_class`, `skip_bad_files`, `data_dir`) that `load_dataset` takes
    for `dataset`."""
    if dataset in TFDS_DATASETS:
        names = ("data_dir",)
    elif dataset in list_datasets():
        names = ()
    else:
        names = ("num_classes", "ignore_class", "skip_bad_files")
    return {name: options[name] for name in names if name in options}


def evaluate(
    model_path,
    dataset,
    *,
    split="test",
    batch_size=32,
    image_size=None,
    num_images=None,
    seed=None,
    per_class=False,
    verbose="auto",
):
    """Evaluates a saved model on a split of a data set.

    The data set is loaded as the run loaded it (`run.json` next to the
    model): with its seed, so that a validation split carved out of a folder
    is the run's, and, on a folder, with its `ignore_class` and
    `skip_bad_files` and the model's classes (masks need not hold every
    class); on a tensorflow-datasets name, from its `data_dir`. A bare
    model gets the loaders' defaults.

    Args:
        model_path: a `.keras` file, e.g. a run's `best.keras`.
        dataset: a name from `keras_cvlec.data.list_datasets()` or a folder.
        split: `"train"`, `"validation"` or `"test"`.
        batch_size: int >= 1.
        image_size: the image size; defaults to the model's fixed input size,
            else the run's (from `run.json` next to the model), else the data
            set's.
        num_images: None or the number of images to evaluate on.
        seed: the data set's seed; None for the run's (else 0).
        per_class: also return the per-class report (`class_report`:
            confusion matrix, IoU, precision, recall and support of each
            class) under `"per_class"`.
        verbose: Keras's `evaluate` verbosity.

    Returns:
        A dict of the loss (cross-entropy with the run's label smoothing,
        from `run.json` next to the model, else none), accuracy and, for
        segmentation, mean IoU, on integer targets whatever the model was
        trained on; pixels of the data set's `ignore_class` (255, "void", in
        folders) are left out.
    """
    trained = load_trained_model(model_path)
    image_size = check_image_size(image_size, default=trained.image_size)
    dataset = check_path("dataset", dataset)
    run_options = {**trained.data_options, "num_classes": len(trained.class_names)}
    run_seed = run_options.pop("seed", 0)
    data, info = load_dataset(
        dataset,
        split,
        task=trained.task,
        image_size=image_size,
        batch_size=batch_size,
        num_images=num_images,
        seed=run_seed if seed is None else seed,
        **_source_options(dataset, run_options),
    )
    if info.num_classes != len(trained.class_names):
        raise ValueError(
            f"The model predicts {len(trained.class_names)} classes, the data set "
            f"{info.name!r} has {info.num_classes}."
        )
    model = trained.model
    model.compile(
        **compile_arguments(
            trained.task,
            info.num_classes,
            label_smoothing=trained.label_smoothing,
            from_logits=trained.from_logits,
            ignore_class=info.ignore_class,
        )
    )
    results = model.evaluate(data, return_dict=True, verbose=verbose)
    results = {name: float(value) for name, value in results.items()}
    if check_bool("per_class", per_class):
        results["per_class"] = class_report(
            model,
            data,
            num_classes=info.num_classes,
            class_names=info.class_names,
            task=trained.task,
            from_logits=trained.from_logits,
            ignore_class=info.ignore_class,
        )
    return results
