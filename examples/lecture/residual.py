"""Lecture claim 1: skip connections carry the gradient through a deep net.

The lecture: "the back-propagation signal of ResNet is added by identity ...
allowing continuous training."

Four toy CNNs (`lecture_common.toy_cnn`: a 3x3 stride-2 stem, then blocks of
batch norm, ReLU and a 3x3 convolution at one width and resolution, then a
classifier), plain and residual (`x + block(x)`, the pre-activation ResNet's
block) at a shallow and a deep `--depths`, on the embedded shapes data's
classification task (3 classes at `--image-size` pixels):

- the gradient norm of every block's convolution kernel at initialisation,
  on one batch of `--batch-size` training images: it is read as the change of
  the kernel after one plain SGD step of learning rate 1 (`train_on_batch`),
  the same on every backend, and checked against a NumPy gradient of the
  classifier's `Dense` kernel;
- training curves: `--epochs` epochs of Adam (`--learning-rate`), the
  training loss and accuracy, and the test accuracy after each epoch
  (the degradation problem: the deep plain net trains worse than the shallow
  one; the deep residual one should not).

Command:

    KERAS_BACKEND=tensorflow python examples/lecture/residual.py [--out DIR] [--quick]

Outputs in `--out` (default `lecture_out/residual`): `residual.png` (gradient
norm against depth, training loss and test accuracy against epochs) and
`residual.json` (the numbers). Exits with status 1 if a check fails.
"""

import os
import sys
import time

import keras
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lecture_common import (  # noqa: E402
    add_toy_training_arguments,
    claim_parser,
    fit_classifier,
    output_paths,
    parse_claim_args,
    report_checks,
    save_figure,
    shapes_classification,
    toy_cnn,
    write_json,
)

CLAIM = "residual"
# The sizes of `--quick` (seconds on a CPU; what CI runs).
QUICK = {
    "depths": [1, 2],
    "width": 4,
    "image_size": 16,
    "train_images": 8,
    "test_images": 8,
    "epochs": 1,
    "batch_size": 8,
    "eager": True,
}


def gradients_at_init(model, x, y):
    """The gradient of the mean cross-entropy of `(x, y)` with respect to
    every trainable weight, keyed by weight path: minus the change of one SGD
    step of learning rate 1 (batch norm in training mode, as in training),
    run eagerly (one step is not worth compiling). The step changes the
    model's weights."""
    model.compile(
        optimizer=keras.optimizers.SGD(1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    before = {w.path: keras.ops.convert_to_numpy(w) for w in model.trainable_weights}
    model.train_on_batch(x, y)
    return {w.path: before[w.path] - keras.ops.convert_to_numpy(w) for w in model.trainable_weights}


def dense_gradient_reference(model, x, y):
    """NumPy's gradient of the mean cross-entropy with respect to the
    classifier's kernel: `features^T (softmax(logits) - onehot(y)) / N`, the
    features computed by Keras in training mode (as `train_on_batch` does;
    this updates the batch-norm moving statistics)."""
    features = keras.Model(model.input, model.get_layer("pool").output)
    f = keras.ops.convert_to_numpy(features(x, training=True)).astype("float64")
    kernel, bias = (w.astype("float64") for w in model.get_layer("logits").get_weights())
    logits = f @ kernel + bias
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return f.T @ p / len(y)


def plot(path, runs, title):
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    depths = sorted({run["depth"] for run in runs})
    for run in runs:
        style = dict(
            linestyle="-" if run["residual"] else "--",
            color=f"C{depths.index(run['depth'])}",
            label=run["name"],
            marker="o",
            markersize=3,
        )
        norms = run["gradient_norms"]
        axes[0].plot(range(1, len(norms) + 1), norms, **style)
        epochs = range(1, len(run["history"]["loss"]) + 1)
        axes[1].plot(epochs, run["history"]["loss"], **style)
        axes[2].plot(epochs, run["history"]["val_accuracy"], **style)
    axes[0].set_yscale("log")
    axes[0].set_title("Gradient norm at initialisation")
    axes[0].set_xlabel("block (3x3 conv layer), from the input")
    axes[0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[0].set_ylabel("‖∂loss/∂kernel‖ (Frobenius)")
    axes[1].set_title("Training loss (mean over each epoch)")
    axes[1].set_ylabel("cross-entropy")
    axes[2].set_title("Test accuracy after each epoch")
    axes[2].set_ylabel("accuracy (3 classes, chance 1/3)")
    for ax in axes[1:]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle(title)
    save_figure(fig, path)


def main(argv=None):
    parser = claim_parser(__doc__, CLAIM)
    parser.add_argument("--depths", type=int, nargs=2, default=[8, 32])
    add_toy_training_arguments(parser, train_images=1024, test_images=256, epochs=8, batch_size=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parse_claim_args(parser, argv, QUICK)
    if not 0 < args.depths[0] < args.depths[1]:
        parser.error(f"--depths must be two increasing positive ints. Received: {args.depths}")
    png_path, json_path = output_paths(args.out, CLAIM)
    data = shapes_classification(args.train_images, args.test_images, args.image_size)
    (x_train, y_train), _ = data
    x_batch, y_batch = x_train[: args.batch_size], y_train[: args.batch_size]

    runs, dense_errors = [], []
    for residual in (False, True):
        for depth in args.depths:
            keras.utils.set_random_seed(args.seed)
            model = toy_cnn(depth, residual=residual, width=args.width, image_size=args.image_size)
            initial = model.get_weights()
            reference = dense_gradient_reference(model, x_batch, y_batch)
            gradients = gradients_at_init(model, x_batch, y_batch)
            model.set_weights(initial)  # train from the initialisation
            measured = gradients[model.get_layer("logits").kernel.path]
            dense_errors.append(
                float(np.max(np.abs(measured - reference)) / np.max(np.abs(reference)))
            )
            norms = [
                float(np.linalg.norm(gradients[model.get_layer(f"block{i}_conv").kernel.path]))
                for i in range(1, depth + 1)
            ]
            start = time.perf_counter()
            history = fit_classifier(
                model,
                data,
                epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                eager=args.eager,
            )
            runs.append(
                {
                    "name": f"{'residual' if residual else 'plain'} {depth}",
                    "residual": residual,
                    "depth": depth,
                    "params": int(model.count_params()),
                    "gradient_norms": norms,
                    "first_over_last_gradient_norm": norms[0] / norms[-1],
                    "train_seconds": time.perf_counter() - start,
                    "history": history,
                }
            )
            print(
                f"{runs[-1]['name']:12s} gradient norm block 1 {norms[0]:.2e}, block "
                f"{depth} {norms[-1]:.2e}; final training loss {history['loss'][-1]:.3f}, "
                f"accuracy {history['accuracy'][-1]:.3f}, test accuracy "
                f"{history['val_accuracy'][-1]:.3f} ({runs[-1]['train_seconds']:.0f} s)",
                flush=True,
            )
    by_name = {run["name"]: run for run in runs}
    results = {
        "backend": keras.backend.backend(),
        "depths": args.depths,
        "width": args.width,
        "image_size": args.image_size,
        "train_images": args.train_images,
        "test_images": args.test_images,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "dense_gradient_max_relative_error": max(dense_errors),
        "runs": runs,
    }
    results["checks"] = {
        "dense_gradient_matches_numpy": results["dense_gradient_max_relative_error"] < 1e-3,
        "one_gradient_norm_a_block": all(len(r["gradient_norms"]) == r["depth"] for r in runs),
        "gradient_norms_positive_and_finite": all(
            0 < n < np.inf for r in runs for n in r["gradient_norms"]
        ),
        "skips_add_no_parameters": all(
            by_name[f"plain {d}"]["params"] == by_name[f"residual {d}"]["params"]
            for d in args.depths
        ),
        "one_loss_an_epoch_all_finite": all(
            len(r["history"]["loss"]) == args.epochs and np.all(np.isfinite(r["history"]["loss"]))
            for r in runs
        ),
    }
    plot(
        png_path,
        runs,
        f"Plain vs residual CNNs on shapes ({args.image_size}x{args.image_size}, "
        f"{args.train_images} training images, width {args.width}), {results['backend']} backend",
    )
    write_json(json_path, results)
    return report_checks(results, png_path, json_path)


if __name__ == "__main__":
    sys.exit(main())
