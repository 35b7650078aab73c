"""Lecture claim 7: label smoothing.

The lecture: without label smoothing, to output a one-hot target "the weights
also need to be very large", and then "a small perturbation" of the input can
give a "false output".

The same small plain CNN (convolution, batch norm, ReLU) is trained on the
embedded shapes classification data (circle, square, triangle) with
keras_cvlec's `SparseCategoricalCrossentropy`, once with `label_smoothing=0` and once with
the ResNet recipe's 0.1 (`RECIPES["resnet"].label_smoothing`), from the same
initial weights and batch order, for `--seeds` seeds. AdamW on a warmup +
cosine schedule (`keras_cvlec.training.make_optimizer`; one warmup epoch),
weight decay 0 by default so that only the loss differs, batch-norm momentum
from `norm_momentum_for`. On the test split it measures:

- logits: mean largest logit and mean gap between the two largest (on the
  test images, and the gap on the training images too), against
  the gap that minimises the smoothed loss, `log(1 + K (1 - e) / e)` for K
  classes and smoothing e (without smoothing the minimiser is infinite);
- the final Dense layer's kernel norm (Frobenius), after every epoch;
- accuracy when Gaussian noise of standard deviation sigma is added to the
  test images (pixels in [0, 1], not clipped), one curve per model;
- calibration: a reliability diagram (accuracy in `--bins` equal-width
  confidence bins, all seeds pooled) and the expected calibration error
  ECE = sum over bins of (bin size / N) |accuracy - mean confidence|, in NumPy.

Command:

    KERAS_BACKEND=tensorflow python examples/lecture/label_smoothing.py [--out DIR] [--quick]

Outputs in `--out` (default `lecture_out/label_smoothing`):
`label_smoothing.png` (logit gaps, weight norms, accuracy under noise,
reliability diagram, confidence histogram) and `label_smoothing.json` (the numbers per seed and
their mean and standard deviation). Exits with status 1 if a check fails.
"""

import math
import os
import sys

import keras
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from keras_cvlec.data import shapes_dataset  # noqa: E402
from keras_cvlec.losses import SparseCategoricalCrossentropy  # noqa: E402
from keras_cvlec.training import RECIPES, make_optimizer, norm_momentum_for  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lecture_common import (  # noqa: E402
    claim_parser,
    output_paths,
    parse_claim_args,
    report_checks,
    save_figure,
    write_json,
)

CLAIM = "label_smoothing"
# The sizes of `--quick` (seconds on a CPU; what CI runs).
QUICK = {
    "image_size": 16,
    "train_images": 32,
    "test_images": 32,
    "width": 4,
    "epochs": 1,
    "batch_size": 16,
    "seeds": 1,
    "sigmas": [0.0, 0.1],
}
NUM_CLASSES = 3


def build_classifier(image_size, width, norm_momentum):
    """A plain CNN: three 3x3 convolution + batch norm + ReLU stages of
    `width`, 2 `width` and 4 `width` filters (max-pooling between them),
    global average pooling and a Dense layer giving logits."""
    layers = [keras.Input((image_size, image_size, 3))]
    for stage in range(3):
        if stage:
            layers.append(keras.layers.MaxPooling2D())
        layers += [
            keras.layers.Conv2D(width * 2**stage, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(momentum=norm_momentum),
            keras.layers.ReLU(),
        ]
    layers += [
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(NUM_CLASSES, name="logits"),
    ]
    return keras.Sequential(layers)


def optimal_logit_gap(smoothing, num_classes):
    """The gap between the true class's logit and the others' that minimises
    the smoothed cross-entropy, log(1 + K (1 - e) / e); None for e = 0 (the
    loss then decreases for ever as the gap grows)."""
    return None if smoothing == 0 else math.log1p(num_classes * (1 - smoothing) / smoothing)


def crossentropy_numpy(labels, logits, smoothing):
    """The mean cross-entropy of `logits` against targets smoothed by
    `smoothing` (0: the negative log-likelihood), in float64 NumPy."""
    logits = logits.astype("float64")
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    true = log_probs[np.arange(len(labels)), labels]
    return float(np.mean(-(1 - smoothing) * true - smoothing * log_probs.mean(-1)))


def calibration_bins(confidences, correct, bins):
    """Equal-width confidence bins on [0, 1] (a confidence of 1 falls in the
    last bin): per bin the count, mean confidence and accuracy (None where
    empty), and the expected calibration error.

    Example:

    >>> ece = calibration_bins([0.95, 0.95, 0.65], [1, 0, 1], bins=10)["ece"]
    >>> round(ece, 4)  # 2/3 * |0.5 - 0.95| + 1/3 * |1 - 0.65|
    0.4167
    """
    confidences = np.asarray(confidences, "float64")
    correct = np.asarray(correct, "float64")
    index = np.minimum((confidences * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    filled = counts > 0
    mean_confidence = np.full(bins, np.nan)
    accuracy = np.full(bins, np.nan)
    mean_confidence[filled] = np.bincount(index, confidences, bins)[filled] / counts[filled]
    accuracy[filled] = np.bincount(index, correct, bins)[filled] / counts[filled]
    gaps = np.abs(accuracy[filled] - mean_confidence[filled])
    return {
        "counts": counts.tolist(),
        "mean_confidence": [None if np.isnan(v) else v for v in mean_confidence],
        "accuracy": [None if np.isnan(v) else v for v in accuracy],
        "ece": float(np.sum(counts[filled] * gaps) / len(confidences)),
    }


def kernel_norm(model):
    """The Frobenius norm of the final Dense layer's kernel."""
    return float(np.linalg.norm(keras.ops.convert_to_numpy(model.get_layer("logits").kernel)))


def softmax(logits):
    logits = logits.astype("float64")
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def calibration_of(logits, labels, bins):
    """`calibration_bins` of the softmax of `logits` against `labels`."""
    probabilities = softmax(logits)
    return calibration_bins(probabilities.max(-1), probabilities.argmax(-1) == labels, bins)


def train_and_measure(smoothing, seed, data, args):
    """Trains one model and returns its numbers and its test logits."""

    def predict(images):
        return model.predict(images, batch_size=args.batch_size, verbose=0)

    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)  # the same initial weights for both losses
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    model = build_classifier(args.image_size, args.width, norm_momentum_for(steps_per_epoch))
    kernel_norms = [kernel_norm(model)]
    steps = steps_per_epoch * args.epochs
    model.compile(
        optimizer=make_optimizer(
            learning_rate=args.learning_rate,
            weight_decay=args.weight_decay,
            total_steps=steps,
            warmup_steps=min(steps - 1, steps_per_epoch),
            model=model,
        ),
        loss=SparseCategoricalCrossentropy(label_smoothing=smoothing, from_logits=True),
    )
    history = model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=0,
        callbacks=[
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: kernel_norms.append(kernel_norm(model))
            )
        ],
    ).history
    logits = predict(x_test)
    top2 = np.sort(logits, -1)[:, -2:]
    train_logits = predict(x_train)
    train_top2 = np.sort(train_logits, -1)[:, -2:]
    noise = np.random.default_rng(seed)
    noisy_accuracy = []
    for sigma in args.sigmas:
        noisy = x_test + sigma * noise.standard_normal(x_test.shape).astype("float32")
        noisy_accuracy.append(float(np.mean(predict(noisy).argmax(-1) == y_test)))
    probabilities = softmax(logits)
    return {
        "seed": seed,
        "last_epoch_train_loss": float(history["loss"][-1]),
        "train_accuracy": float(np.mean(train_logits.argmax(-1) == y_train)),
        "test_loss": crossentropy_numpy(y_test, logits, smoothing),
        "test_nll": crossentropy_numpy(y_test, logits, 0.0),
        "test_accuracy": float(np.mean(logits.argmax(-1) == y_test)),
        "mean_max_logit": float(np.mean(top2[:, 1])),
        "mean_logit_gap": float(np.mean(top2[:, 1] - top2[:, 0])),
        "train_mean_logit_gap": float(np.mean(train_top2[:, 1] - train_top2[:, 0])),
        "mean_confidence": float(np.mean(probabilities.max(-1))),
        "initial_kernel_norm": kernel_norms[0],
        "final_kernel_norm": kernel_norm(model),
        "kernel_norm_by_epoch": kernel_norms,
        "noisy_accuracy": noisy_accuracy,
        "ece": calibration_of(logits, y_test, args.bins)["ece"],
    }, logits


def summarize(runs, keys):
    return {
        key: {
            "mean": float(np.mean([r[key] for r in runs])),
            "std": float(np.std([r[key] for r in runs])),
        }
        for key in keys
    }


def plot(path, models, pooled, sigmas, optimal_gap, bins):
    fig, axes = plt.subplots(2, 3, figsize=(19, 9))
    colors = {"no_smoothing": "C3", "smoothing": "C0"}

    ax = axes[0, 0]
    gaps = {
        name: np.diff(np.sort(logits, -1)[:, -2:], axis=-1)[:, 0] for name, logits in pooled.items()
    }
    edges = np.linspace(0, max(g.max() for g in gaps.values()) * 1.02, 40)
    for name, gap in gaps.items():
        ax.hist(
            gap,
            bins=edges,
            histtype="step",
            linewidth=1.5,
            color=colors[name],
            label=models[name]["label"],
        )
    ax.axvline(
        optimal_gap,
        color="k",
        linestyle="--",
        label=f"loss minimiser with smoothing: {optimal_gap:.2f}",
    )
    ax.set_title("Gap between the two largest logits (test images, all seeds)")
    ax.set_xlabel("largest − second-largest logit")
    ax.set_ylabel("test images")
    ax.legend(fontsize=8)

    ax = axes[0, 1]
    keys = [
        ("mean_max_logit", "mean largest\nlogit"),
        ("mean_logit_gap", "mean logit gap"),
        ("train_mean_logit_gap", "mean logit gap\n(training images)"),
        ("final_kernel_norm", "final Dense\nkernel norm"),
    ]
    positions = np.arange(len(keys))
    for offset, (name, model) in zip((-0.2, 0.2), models.items()):
        means = [model["summary"][key]["mean"] for key, _ in keys]
        stds = [model["summary"][key]["std"] for key, _ in keys]
        ax.bar(
            positions + offset,
            means,
            0.4,
            yerr=stds,
            capsize=4,
            color=colors[name],
            label=model["label"],
        )
        for x, m, std in zip(positions + offset, means, stds):
            ax.annotate(
                f"{m:.2f}",
                (x, m + std),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 4),
                textcoords="offset points",
            )
    ax.axhline(
        optimal_gap,
        color="k",
        linestyle="--",
        linewidth=1,
        label="smoothed-loss minimiser of the gap",
    )
    ax.margins(y=0.12)
    ax.set_xticks(positions, [label for _, label in keys])
    ax.set_title("Logits and final-layer weights (mean ± std over seeds)")
    ax.legend(fontsize=8)

    ax = axes[0, 2]
    for name, model in models.items():
        curve = np.array([run["kernel_norm_by_epoch"] for run in model["runs"]])
        mean, std = curve.mean(0), curve.std(0)
        ax.plot(mean, color=colors[name], label=model["label"])
        ax.fill_between(np.arange(len(mean)), mean - std, mean + std, color=colors[name], alpha=0.2)
    ax.set_title("Final Dense kernel norm during training (mean ± std over seeds)")
    ax.set_xlabel("epoch (0: initialisation)")
    ax.set_ylabel("Frobenius norm")
    ax.legend(fontsize=8)

    ax = axes[1, 0]
    for name, model in models.items():
        curve = np.array([run["noisy_accuracy"] for run in model["runs"]])
        mean, std = curve.mean(0), curve.std(0)
        ax.plot(sigmas, mean, "o-", color=colors[name], label=model["label"])
        ax.fill_between(sigmas, mean - std, mean + std, color=colors[name], alpha=0.2)
    ax.axhline(1 / NUM_CLASSES, color="gray", linestyle=":", label="chance")
    ax.set_title("Accuracy under Gaussian input noise (mean ± std over seeds)")
    ax.set_xlabel("noise standard deviation σ (pixel values in [0, 1])")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    centers = (np.arange(bins) + 0.5) / bins
    for offset, (name, model) in zip((-0.25, 0.25), models.items()):
        calibration = model["calibration"]
        ax.bar(
            centers + offset / bins,
            np.array(calibration["accuracy"], float),
            0.5 / bins,
            color=colors[name],
            label=f"{model['label']}: ECE {model['summary']['ece']['mean']:.3f} "
            f"± {model['summary']['ece']['std']:.3f} (seeds)",
        )
        ax.plot(
            np.array(calibration["mean_confidence"], float),
            np.array(calibration["accuracy"], float),
            "o",
            color=colors[name],
            markersize=4,
        )
    ax.plot([0, 1], [0, 1], color="k", linestyle="--", label="perfect calibration")
    ax.set_xlim(1 / NUM_CLASSES - 0.05, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Reliability diagram ({bins} bins, all seeds pooled)")
    ax.set_xlabel("confidence (largest softmax probability)")
    ax.set_ylabel("accuracy in the bin")
    ax.legend(fontsize=8, loc="upper left")

    ax = axes[1, 2]
    for offset, (name, model) in zip((-0.25, 0.25), models.items()):
        counts = np.array(model["calibration"]["counts"])
        ax.bar(
            centers + offset / bins,
            counts / counts.sum(),
            0.5 / bins,
            color=colors[name],
            label=model["label"],
        )
    ax.set_xlim(1 / NUM_CLASSES - 0.05, 1.0)
    ax.set_title(f"Confidence histogram ({bins} bins, all seeds pooled)")
    ax.set_xlabel("confidence (largest softmax probability)")
    ax.set_ylabel("fraction of test images")
    ax.legend(fontsize=8, loc="upper left")
    save_figure(fig, path)


def main(argv=None):
    parser = claim_parser(__doc__, CLAIM)
    parser.add_argument("--smoothing", type=float, default=RECIPES["resnet"].label_smoothing)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--train-images", type=int, default=1024)
    parser.add_argument("--test-images", type=int, default=1024)
    parser.add_argument("--width", type=int, default=16, help="filters of the first convolution")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bins", type=int, default=15, help="calibration bins")
    parser.add_argument(
        "--sigmas", type=float, nargs="+", default=[0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1]
    )
    args = parse_claim_args(parser, argv, QUICK)
    for name in (
        "image_size",
        "train_images",
        "test_images",
        "width",
        "epochs",
        "batch_size",
        "seeds",
        "bins",
    ):
        if getattr(args, name) < 1:
            parser.error(
                f"--{name.replace('_', '-')} must be at least 1. Received: {getattr(args, name)}"
            )
    if not 0 < args.smoothing < 1:
        parser.error(f"--smoothing must be in (0, 1). Received: {args.smoothing}")
    if args.sigmas[0] != 0 or any(b <= a for a, b in zip(args.sigmas, args.sigmas[1:])):
        parser.error(f"--sigmas must increase from 0. Received: {args.sigmas}")
    png_path, json_path = output_paths(args.out, CLAIM)

    data = tuple(
        shapes_dataset(split, num_images=n, image_size=args.image_size, task="classification")
        for split, n in (("train", args.train_images), ("test", args.test_images))
    )
    y_test = data[1][1]
    smoothings = {"no_smoothing": 0.0, "smoothing": args.smoothing}
    models, pooled = {}, {}
    for name, smoothing in smoothings.items():
        runs, logits = [], []
        for seed in range(args.seeds):
            run, run_logits = train_and_measure(smoothing, seed, data, args)
            runs.append(run)
            logits.append(run_logits)
        pooled[name] = np.concatenate(logits)
        models[name] = {
            "label": f"label smoothing {smoothing:g}",
            "label_smoothing": smoothing,
            "optimal_logit_gap": optimal_logit_gap(smoothing, NUM_CLASSES),
            "runs": runs,
            "summary": summarize(
                runs,
                [
                    "train_accuracy",
                    "test_accuracy",
                    "mean_max_logit",
                    "mean_logit_gap",
                    "train_mean_logit_gap",
                    "mean_confidence",
                    "final_kernel_norm",
                    "ece",
                ],
            ),
            "calibration": calibration_of(pooled[name], np.tile(y_test, args.seeds), args.bins),
        }
    all_runs = [run for model in models.values() for run in model["runs"]]
    results = {
        "backend": keras.backend.backend(),
        "settings": {key: value for key, value in vars(args).items() if key != "out"},
        "models": models,
    }
    # ECE of a hand-computed example: bin [0.9, 1) holds 0.95 twice, one right
    # (|0.5 - 0.95| = 0.45); bin [0.6, 0.7) holds 0.65 three times, two right
    # (|2/3 - 0.65| = 1/60); ECE = 2/5 * 0.45 + 3/5 * 1/60 = 0.19.
    hand = calibration_bins([0.95, 0.95, 0.65, 0.65, 0.65], [1, 0, 1, 1, 0], bins=10)["ece"]
    results["checks"] = {
        "same_initial_weights_for_both_losses": all(
            math.isclose(a["initial_kernel_norm"], b["initial_kernel_norm"], rel_tol=1e-6)
            for a, b in zip(models["no_smoothing"]["runs"], models["smoothing"]["runs"])
        ),
        "kernel_norm_recorded_every_epoch": all(
            len(r["kernel_norm_by_epoch"]) == args.epochs + 1
            and r["kernel_norm_by_epoch"][-1] == r["final_kernel_norm"]
            for r in all_runs
        ),
        "noise_free_accuracy_equals_clean_accuracy": all(
            r["noisy_accuracy"][0] == r["test_accuracy"] for r in all_runs
        ),
        "calibration_counts_sum_to_test_images": all(
            sum(model["calibration"]["counts"]) == args.seeds * len(y_test)
            for model in models.values()
        ),
        "ece_of_hand_example_is_0_19": math.isclose(hand, 0.19, abs_tol=1e-12),
    }
    plot(png_path, models, pooled, args.sigmas, models["smoothing"]["optimal_logit_gap"], args.bins)
    write_json(json_path, results)

    print(f"backend {results['backend']}, {args.seeds} seed(s), mean ± std:")
    for model in models.values():
        summary = model["summary"]
        noisy = np.mean([r["noisy_accuracy"] for r in model["runs"]], 0)
        print(
            f"  {model['label']:20s} test accuracy {summary['test_accuracy']['mean']:.3f} "
            f"± {summary['test_accuracy']['std']:.3f}, logit gap "
            f"{summary['mean_logit_gap']['mean']:.2f} ± {summary['mean_logit_gap']['std']:.2f}, "
            f"kernel norm {summary['final_kernel_norm']['mean']:.2f} "
            f"± {summary['final_kernel_norm']['std']:.2f}, ECE {summary['ece']['mean']:.3f} "
            f"± {summary['ece']['std']:.3f}"
        )
        print(
            "    accuracy under noise "
            + ", ".join(f"σ={s:g}: {a:.3f}" for s, a in zip(args.sigmas, noisy))
        )
    return report_checks(results, png_path, json_path)


if __name__ == "__main__":
    sys.exit(main())
