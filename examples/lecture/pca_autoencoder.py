"""Lecture claim 9: PCA is the best low-rank approximation; auto-encoders are
its nonlinear version.

The lecture: "PCA ... the best low-rank approximation", and auto-encoders as
the nonlinear version of it.

Measured on `--image-size` x `--image-size` gray images of the embedded
shapes data, flattened to vectors of d pixels and centred by the training
mean (`--train-images` for fitting, `--test-images` held out), for every
code size k of `--ks`:

- PCA by NumPy's SVD of the centred training matrix X = U S V^T: the
  reconstruction X V_k V_k^T and its mean squared error per pixel, checked
  against the Eckart-Young formula: the sum of the discarded squared
  singular values / (n d);
- a linear auto-encoder (`Dense(k)` then `Dense(d)`, no activation) trained
  with Adam and a cosine-decayed learning rate for `--epochs` epochs to
  reconstruct its input: on the training images it can only approach PCA's
  error, never beat it (Eckart-Young);
- a nonlinear auto-encoder (`Dense(--hidden, relu)`, `Dense(k)`,
  `Dense(--hidden, relu)`, `Dense(d)`) trained the same way.

All the auto-encoders are trained at once, as the branches of one model
(independent: no shared weights, Adam's update of a weight uses only its
own gradient).

Errors are mean squared errors per pixel on intensities in [0, 1], on the
training and the test images.

Command:

    KERAS_BACKEND=tensorflow python examples/lecture/pca_autoencoder.py [--out DIR] [--quick]

Outputs in `--out` (default `lecture_out/pca_autoencoder`):
`pca_autoencoder.png` (error against k, example reconstructions) and
`pca_autoencoder.json` (the numbers). Exits with status 1 if a check fails.
"""

import os
import sys

import keras
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from keras_cvlec.data import shapes_dataset  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lecture_common import (  # noqa: E402
    claim_parser,
    output_paths,
    parse_claim_args,
    report_checks,
    save_figure,
    write_json,
)

CLAIM = "pca_autoencoder"
# The sizes of `--quick` (seconds on a CPU; what CI runs).
QUICK = {"ks": [4], "train_images": 64, "test_images": 16, "epochs": 1, "hidden": 16}
METHODS = ("pca", "linear_autoencoder", "relu_autoencoder")
LABELS = {
    "pca": "PCA (SVD)",
    "linear_autoencoder": "linear auto-encoder",
    "relu_autoencoder": "ReLU auto-encoder",
}
# Relative slack for float32 training when comparing with PCA's float64 error.
SLACK = 1e-3


def gray_vectors(split, num_images, image_size, seed):
    images, _ = shapes_dataset(
        split, num_images=num_images, image_size=image_size, task="classification", seed=seed
    )
    return images.mean(-1).reshape(num_images, -1).astype("float64")


def dense_autoencoder(inputs, k, hidden, name):
    """A dense auto-encoder with a k-dimensional code; linear if `hidden` is None."""
    x = inputs
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu", name=f"{name}_encoder")(x)
    x = keras.layers.Dense(k, name=f"{name}_code")(x)
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu", name=f"{name}_decoder")(x)
    return keras.layers.Dense(inputs.shape[-1], name=name)(x)


def train_autoencoders(x, ks, args):
    """Trains a linear and a ReLU auto-encoder for every k in `ks` and
    returns their reconstructions of `x`, a dict `{(method, k): array}`.

    They are the branches of one model, trained by one `fit` on the sum of
    their losses: the branches share no weights and Adam updates each weight
    from its own gradient, so this is the same as training each alone, with
    one compilation instead of one per auto-encoder.
    """
    inputs = keras.Input((x.shape[1],))
    outputs = {}
    for k in ks:
        for method, hidden in (("linear_autoencoder", None), ("relu_autoencoder", args.hidden)):
            name = f"{method}_{k}"
            outputs[name] = dense_autoencoder(inputs, k, hidden, name)
    model = keras.Model(inputs, outputs)
    steps = args.epochs * -(-args.train_images // args.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    train = x[: args.train_images]
    model.fit(
        train,
        {name: train for name in outputs},
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=0,
    )
    reconstructions = model.predict_on_batch(x)
    return {
        (method, int(k)): value
        for (method, k), value in (
            (name.rsplit("_", 1), value) for name, value in reconstructions.items()
        )
    }


def mse(reconstruction, x):
    return float(np.mean((reconstruction - x) ** 2))


def plot(path, results, examples, title):
    fig, axes = plt.subplots(1, 3, figsize=(22, 6.5), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    ks = results["ks"]
    for ax, methods, relative in ((axes[0], METHODS, False), (axes[1], METHODS[1:], True)):
        for method in methods:
            color = f"C{METHODS.index(method)}"
            for split, style in (("train", "-o"), ("test", "--s")):
                errors = np.array([row[f"{method}_{split}_mse"] for row in results["rows"]])
                if relative:
                    errors = errors / [row[f"pca_{split}_mse"] for row in results["rows"]]
                ax.plot(ks, errors, style, color=color, label=f"{LABELS[method]}, {split}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, ks)
        ax.set_xlabel("code size k (numbers an image is reduced to)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("reconstruction MSE per pixel (intensity in [0, 1])²")
    axes[0].set_title("Reconstruction error against code size")
    axes[0].legend(fontsize=8)
    axes[1].axhline(1.0, color="C0", linewidth=2, label="PCA (bound on train: Eckart-Young)")
    axes[1].set_ylabel("auto-encoder MSE / PCA MSE (same images)")
    axes[1].set_title("Auto-encoders relative to PCA")
    axes[1].legend(fontsize=8)
    ax = axes[2]
    rows, size = examples["rows"], examples["image_size"]
    montage = np.concatenate(
        [np.concatenate([image.reshape(size, size) for image in row], axis=1) for row in rows],
        axis=0,
    )
    ax.imshow(np.clip(montage, 0.0, 1.0), cmap="gray", vmin=0.0, vmax=1.0)
    ax.set_yticks(
        [size * (i + 0.5) for i in range(len(rows))],
        ["test image", *(LABELS[method] for method in METHODS)],
    )
    ax.set_xticks([size * (i + 0.5) for i in range(len(rows[0]))], range(1, len(rows[0]) + 1))
    ax.set_xlabel(f"test image ({size}x{size} pixels each)")
    ax.set_title(f"Reconstructions at k = {examples['k']}")
    fig.suptitle(title)
    save_figure(fig, path)


def main(argv=None):
    parser = claim_parser(__doc__, CLAIM)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--train-images", type=int, default=2048)
    parser.add_argument("--test-images", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--hidden", type=int, default=128, help="ReLU auto-encoder's width")
    parser.add_argument("--examples", type=int, default=8, help="reconstructions drawn")
    parser.add_argument("--seed", type=int, default=0)
    args = parse_claim_args(parser, argv, QUICK)
    d = args.image_size**2
    if any(k < 1 or k >= min(d, args.train_images) for k in args.ks):
        parser.error(
            f"--ks must lie in [1, {min(d, args.train_images) - 1}] (below the pixels "
            f"and the training images). Got {args.ks}"
        )
    png_path, json_path = output_paths(args.out, CLAIM)
    keras.utils.set_random_seed(args.seed)

    x_train = gray_vectors("train", args.train_images, args.image_size, args.seed)
    x_test = gray_vectors("test", args.test_images, args.image_size, args.seed)
    mean = x_train.mean(0)
    train_c, test_c = x_train - mean, x_test - mean
    _, singular, vt = np.linalg.svd(train_c, full_matrices=False)
    n = len(train_c)
    ks = sorted(set(args.ks))
    show_k = ks[len(ks) // 2]
    shown = test_c[: args.examples]
    examples = {"k": show_k, "image_size": args.image_size, "rows": [shown + mean]}

    # The training then the test images: one batch, one compiled predict.
    reconstructions = train_autoencoders(
        np.concatenate([train_c, test_c]).astype("float32"), ks, args
    )
    rows = []
    for k in ks:
        basis = vt[:k].T
        row = {
            "k": k,
            "pca_train_mse": mse(train_c @ basis @ basis.T, train_c),
            "pca_test_mse": mse(test_c @ basis @ basis.T, test_c),
            "eckart_young_mse": float(np.sum(singular[k:] ** 2) / (n * d)),
        }
        if k == show_k:
            examples["rows"].append(shown @ basis @ basis.T + mean)
        for method in METHODS[1:]:
            reconstruction = reconstructions[method, k]
            row[f"{method}_train_mse"] = mse(reconstruction[:n], train_c)
            row[f"{method}_test_mse"] = mse(reconstruction[n:], test_c)
            if k == show_k:
                examples["rows"].append(reconstruction[n : n + len(shown)] + mean)
        rows.append(row)
        print(
            f"k = {k:3d}: MSE train (test) PCA {row['pca_train_mse']:.5f} "
            f"({row['pca_test_mse']:.5f}), linear AE {row['linear_autoencoder_train_mse']:.5f} "
            f"({row['linear_autoencoder_test_mse']:.5f}), ReLU AE "
            f"{row['relu_autoencoder_train_mse']:.5f} ({row['relu_autoencoder_test_mse']:.5f})",
            flush=True,
        )

    results = {
        "backend": keras.backend.backend(),
        "image_size": args.image_size,
        "pixels": d,
        "train_images": args.train_images,
        "test_images": args.test_images,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "hidden": args.hidden,
        "seed": args.seed,
        "ks": ks,
        "total_variance_per_pixel": float(np.sum(singular**2) / (n * d)),
        "rows": rows,
        "linear_over_pca_train": [
            row["linear_autoencoder_train_mse"] / row["pca_train_mse"] for row in rows
        ],
        "relu_over_pca_train": [
            row["relu_autoencoder_train_mse"] / row["pca_train_mse"] for row in rows
        ],
        "relu_over_pca_test": [
            row["relu_autoencoder_test_mse"] / row["pca_test_mse"] for row in rows
        ],
    }
    pca_errors = [row["pca_train_mse"] for row in rows]
    results["checks"] = {
        "pca_error_is_discarded_singular_values": all(
            np.isclose(row["pca_train_mse"], row["eckart_young_mse"], rtol=1e-9) for row in rows
        ),
        "pca_error_falls_with_k": all(a > b for a, b in zip(pca_errors, pca_errors[1:])),
        # Eckart-Young: no rank-k linear map reconstructs the training set better.
        "linear_autoencoder_not_below_pca_on_train": all(
            ratio >= 1 - SLACK for ratio in results["linear_over_pca_train"]
        ),
    }
    plot(
        png_path,
        results,
        examples,
        f"PCA vs auto-encoders on {args.image_size}x{args.image_size} gray shapes images "
        f"({args.train_images} train, {args.test_images} test), {results['backend']} backend",
    )
    write_json(json_path, results)
    return report_checks(results, png_path, json_path)


if __name__ == "__main__":
    sys.exit(main())
