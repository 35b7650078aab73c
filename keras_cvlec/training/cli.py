"""The `train`, `evaluate` and `predict` commands of `keras-cvlec`."""

import ast
import os
import sys

__all__ = ["USER_ERRORS", "add_commands"]

USER_ERRORS = (ValueError, TypeError, FileNotFoundError, ImportError)


def _option(text):
    """`KEY=VALUE`, the value a Python literal (else a string)."""
    import argparse

    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _ignore_class(text):
    import argparse

    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a mask value 0-255 or 'none', got {text!r}"
        ) from None


def _image_size(text):
    import argparse

    try:
        sizes = [int(part) for part in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected SIZE or HEIGHTxWIDTH, e.g. 64 or 64x96, got {text!r}"
        ) from None
    return sizes[0] if len(sizes) == 1 else tuple(sizes)


def _user_errors(command, function, *args, **kwargs):
    """Runs `function`; bad input exits with a one-line message."""
    try:
        return function(*args, **kwargs)
    except USER_ERRORS as error:
        raise SystemExit(f"keras-cvlec {command}: {error}") from None


def _recipe_options(args):
    """`--recipe-options` with `--gradient-accumulation-steps`, a recipe field."""
    options = dict(args.recipe_options)
    steps = args.gradient_accumulation_steps
    if steps is not None:
        if options.setdefault("gradient_accumulation_steps", steps) != steps:
            raise SystemExit(
                f"keras-cvlec train: --gradient-accumulation-steps {steps} and "
                f"--recipe-options gradient_accumulation_steps="
                f"{options['gradient_accumulation_steps']!r} differ: give one."
            )
    return options


def _train(args):
    from keras_cvlec.training.callbacks import TrainingDivergedError
    from keras_cvlec.training.run import prepare_training, run_training

    run = _user_errors(
        "train",
        prepare_training,
        args.model,
        args.dataset,
        epochs=args.epochs,
        batch_size=args.batch_size,
        image_size=args.image_size,
        recipe=args.recipe,
        recipe_options=_recipe_options(args),
        learning_rate=args.learning_rate,
        jit_compile=args.jit_compile,
        mixed_precision=args.mixed_precision or False,
        output_dir=args.output,
        resume=args.resume,
        seed=args.seed,
        num_images=args.num_images,
        model_options=dict(args.model_options),
        backup_every=args.backup_every,
        ignore_class=args.ignore_class,
        skip_bad_files=args.skip_bad_files,
        distribution=args.distribute,
        job_addresses=args.job_addresses,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )
    try:
        metrics = run_training(run, verbose=args.verbose)
    except TrainingDivergedError as error:
        raise SystemExit(f"keras-cvlec train: {error} Run folder: {args.output}") from None
    except KeyboardInterrupt:
        # A run stopped in its first epoch leaves no folder to resume.
        resumable = os.path.exists(os.path.join(args.output, "run.json"))
        print(
            "keras-cvlec train: interrupted. "
            + (
                "Continue it with the same command and --resume."
                if resumable
                else "No run folder kept."
            ),
            file=sys.stderr,
        )
        return 130
    if not run.distribution.is_chief:
        return 0
    for split in ("validation", "test"):
        if metrics[split] is None:
            print(f"{split}: none ({metrics['note']})")
            continue
        values = ", ".join(f"{name} {value:.4f}" for name, value in metrics[split].items())
        print(f"{split}: {values}")
    print(f"run folder: {args.output}")
    return 0


def _evaluate(args):
    from keras_cvlec.training.run import evaluate

    metrics = _user_errors(
        "evaluate",
        evaluate,
        args.model,
        args.dataset,
        split=args.split,
        batch_size=args.batch_size,
        image_size=args.image_size,
        num_images=args.num_images,
        seed=args.seed,
        per_class=True,
        verbose=args.verbose,
    )
    report = metrics.pop("per_class")
    print(", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    print(_per_class_table(report))
    return 0


def _per_class_table(report):
    """The per-class report as aligned text: one row a class."""
    score = lambda value: "   -  " if value is None else f"{value:.4f}"  # noqa: E731
    width = max(len("class"), *(len(name) for name in report["per_class"]))
    rows = [f"{'class':<{width}}  iou     precision recall  support"]
    for name, values in report["per_class"].items():
        rows.append(
            f"{name:<{width}}  {score(values['iou'])}  {score(values['precision'])}    "
            f"{score(values['recall'])}  {values['support']}"
        )
    return "\n".join(rows)


def _predict(args):
    from keras_cvlec.training.predict import predict

    results = _user_errors(
        "predict", predict, args.model, args.images, args.output, top_k=args.top_k
    )
    for result in results:
        if "top_k" in result:
            labels = ", ".join(f"{name} {p:.3f}" for name, p in result["top_k"])
            print(f"{result['image']}: {labels}")
        else:
            print(f"{result['image']}: {result['mask']}, {result['overlay']}")
    return 0


def _add_data_arguments(parser, default_verbose, default_seed=0, seed_help=None):
    parser.add_argument(
        "--dataset", required=True, help="a registered data set (shapes, cifar10, ...) or a folder"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--image-size",
        type=_image_size,
        metavar="SIZE",
        help="image size, e.g. 64 or 64x96 (default: the data set's)",
    )
    parser.add_argument(
        "--num-images", type=int, metavar="N", help="use only N images of each split (quick runs)"
    )
    parser.add_argument("--seed", type=int, default=default_seed, help=seed_help)
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=default_verbose,
        help="Keras's verbosity: 0 silent, 1 progress bar, 2 a line per epoch",
    )


def add_commands(subparsers):
    """Adds the `train`, `evaluate` and `predict` parsers."""
    from keras_cvlec.training.distribution import DISTRIBUTIONS
    from keras_cvlec.training.recipes import RECIPES

    train = subparsers.add_parser("train", help="train a registered model on a data set")
    train.add_argument("--model", required=True, help="a registered model name")
    _add_data_arguments(train, default_verbose=1)
    train.add_argument("--epochs", type=int, help="default: the recipe's")
    train.add_argument("--recipe", choices=sorted(RECIPES), help="default: the model family's")
    train.add_argument(
        "--recipe-options",
        nargs="+",
        type=_option,
        default=[],
        metavar="KEY=VALUE",
        help="recipe fields to change, e.g. mixup_alpha=0 randaugment_magnitude=0",
    )
    train.add_argument(
        "--learning-rate",
        type=float,
        metavar="LR",
        help="peak learning rate (default: the recipe's, scaled to the batch "
        "size by its rule, printed at the start)",
    )
    train.add_argument(
        "--jit-compile",
        action="store_const",
        const=True,
        default="auto",
        help="compile with XLA (default: Keras's 'auto')",
    )
    train.add_argument(
        "--mixed-precision",
        nargs="?",
        const="mixed_float16",
        choices=("mixed_float16", "mixed_bfloat16"),
        help="train in mixed precision: bfloat16 or float16 computations, "
        "float32 weights; float16 with dynamic loss scaling (default policy "
        "mixed_float16)",
    )
    train.add_argument(
        "--gradient-accumulation-steps",
        type=int,
        metavar="N",
        help="update the weights once every N batches with their mean gradient: "
        "the learning rate and schedule of a batch of N x --batch-size (the "
        "recipe field gradient_accumulation_steps; default 1)",
    )
    train.add_argument(
        "--distribute",
        choices=DISTRIBUTIONS,
        default="none",
        help="data-parallel: split each batch (--batch-size, the global batch) over "
        "every device of every process (JAX, TensorFlow); auto: data-parallel when "
        "more than one device or process is there (default: none)",
    )
    processes = train.add_argument_group(
        "several processes (machines)",
        "every process runs the same command with its own --process-id; process 0 writes "
        "the run folder (default: KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES and "
        "_PROCESS_ID on JAX, TF_CONFIG on TensorFlow, else one process)",
    )
    processes.add_argument(
        "--job-addresses",
        metavar="HOST:PORT,...",
        help="the processes' addresses, process 0's first (JAX needs only it)",
    )
    processes.add_argument("--num-processes", type=int, metavar="N")
    processes.add_argument("--process-id", type=int, metavar="I", help="0 to N-1")
    train.add_argument("--output", required=True, metavar="DIR", help="the run folder")
    train.add_argument(
        "--resume", action="store_true", help="continue the unfinished run in --output"
    )
    train.add_argument(
        "--model-options",
        nargs="+",
        type=_option,
        default=[],
        metavar="KEY=VALUE",
        help="builder arguments, e.g. filters=16 depth=3",
    )
    train.add_argument(
        "--backup-every",
        type=int,
        metavar="STEPS",
        help="back up every STEPS steps as well (default: every epoch); a run resumed "
        "from a step backup trains on the steps of its epoch already taken again",
    )
    train.add_argument(
        "--ignore-class",
        type=_ignore_class,
        default=255,
        metavar="VALUE",
        help="folders: the mask value of void pixels, left out of the loss and "
        "metrics (default 255; 'none' reads 255 as a class)",
    )
    train.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="folders: leave out unreadable images and masks (listed in a "
        "warning) instead of failing before training",
    )
    train.set_defaults(handler=_train)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="evaluate a saved model on a data set",
        description="Evaluates a saved model on a split of a data set, loaded as the run "
        "loaded it (run.json next to the model): with its seed and, on a folder, its "
        "--ignore-class and --skip-bad-files.",
    )
    evaluate.add_argument("model", metavar="MODEL.keras")
    _add_data_arguments(
        evaluate,
        default_verbose=0,
        default_seed=None,
        seed_help="default: the run's (run.json next to the model), else 0",
    )
    evaluate.add_argument("--split", default="test", choices=("train", "validation", "test"))
    evaluate.set_defaults(handler=_evaluate)

    predict = subparsers.add_parser(
        "predict", help="masks and overlays, or top-5 labels, for image files"
    )
    predict.add_argument("model", metavar="MODEL.keras")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--output", required=True, metavar="DIR")
    predict.add_argument("--top-k", type=int, default=5)
    predict.set_defaults(handler=_predict)
