"""Shared by the lecture scripts: the command line, the output folder, the
result files and figures, and the pieces two or more claims use (toy CNNs
with optional skips for claims 1-3, segmentation data, training and scores
for claims 8 and 12, annotated grids and a fixed smoothing filter for claims
10 and 11)."""

import argparse
import json
import math
import os
import time

import keras
import numpy as np

from keras_cvlec.data import CLASS_NAMES, shapes_dataset
from keras_cvlec.layers import DepthwiseConv2D, StochasticDepth
from keras_cvlec.losses import SparseCategoricalCrossentropy
from keras_cvlec.metrics import MeanIoU
from keras_cvlec.training import RECIPES, resolve_recipe


def output_paths(out_dir, claim):
    """Creates `out_dir` and returns the paths of `<claim>.png` and `<claim>.json`.

    An existing folder is reused only if it is empty or holds nothing but
    these two files (a previous run of the same script): a user's other files
    are never overwritten.
    """
    own = {f"{claim}.png", f"{claim}.json"}
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise FileExistsError(f"--out {out_dir!r} exists and is not a folder.")
        foreign = sorted(set(os.listdir(out_dir)) - own)
        if foreign:
            raise FileExistsError(
                f"--out {out_dir!r} is not empty and was not written by this "
                f"script (it holds {', '.join(foreign[:5])}); choose an empty "
                "or new folder."
            )
    os.makedirs(out_dir, exist_ok=True)
    return os.path.join(out_dir, f"{claim}.png"), os.path.join(out_dir, f"{claim}.json")


def write_json(path, results):
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


def report_checks(results, png_path, json_path):
    """Prints where the results went and which of `results["checks"]`
    failed; returns the script's exit status (1 when one failed)."""
    failed = [name for name, ok in results["checks"].items() if not ok]
    checks = "FAILED " + ", ".join(failed) if failed else "all passed"
    print(f"wrote {png_path} and {json_path}; checks: {checks}")
    return 1 if failed else 0


def claim_parser(doc, claim):
    """The argument parser of a claim script: its docstring's first line as
    the description, `--out` (default `lecture_out/<claim>`) and `--quick`."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--out", default=os.path.join("lecture_out", claim))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and one seed: checks in seconds that the script runs (CI)",
    )
    return parser


def parse_claim_args(parser, argv, quick):
    """Parses `argv`; under `--quick` the options in `quick` (a dict of
    argument names to values) replace their defaults. Options given on the
    command line still win."""
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args


def save_figure(fig, path):
    """Lays out `fig` (unless it has a layout engine of its own, e.g.
    `layout="constrained"` for sub-figures), writes it to `path` as a PNG
    and closes it."""
    import matplotlib.pyplot as plt

    if fig.get_layout_engine() is None:
        # Room for the suptitle: tight_layout misses it above images (square axes).
        fig.tight_layout(rect=(0, 0, 1, 0.97) if fig.get_suptitle() else None)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def draw_grid(ax, values, title, fmt="{:g}", cmap="viridis", outline=None):
    """Draws the 2D array `values` on `ax` as coloured cells with every value
    written in its cell (row 0 at the top, rows and columns numbered).

    Args:
        ax: a matplotlib axes.
        values: a 2D array.
        title: the panel's title.
        fmt: how a value is written, a `str.format` pattern.
        cmap: the matplotlib colour map of the cells.
        outline: None, or a boolean array of `values`' shape: those cells get
            a red frame.
    """
    from matplotlib.patches import Rectangle

    values = np.asarray(values)
    rows, cols = values.shape
    image = ax.imshow(values, cmap=cmap)
    fontsize = max(6, 12 - max(rows, cols) // 2)
    for (row, col), value in np.ndenumerate(values):
        # Black text on the light half of the colour map, white on the dark half.
        shade = image.cmap(image.norm(value))[:3]
        color = "black" if np.dot(shade, (0.299, 0.587, 0.114)) > 0.5 else "white"
        ax.text(
            col, row, fmt.format(value), ha="center", va="center", fontsize=fontsize, color=color
        )
        if outline is not None and outline[row, col]:
            ax.add_patch(
                Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2)
            )
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("column (pixels)")
    ax.set_ylabel("row (pixels)")
    ax.set_title(title, fontsize=10)


def binomial_filter(x, gain=1.0):
    """Smooths the 2D map `x` with the fixed binomial kernel
    `[1, 2, 1]^T [1, 2, 1] / 16` times `gain`, a keras_cvlec
    `DepthwiseConv2D` with those weights: the filter applied after
    up-sampling. Its frequency response is zero at the Nyquist frequency, so it
    removes any pattern of period 2 (a checkerboard).

    Args:
        x: a 2D NumPy array, at least 3x3.
        gain: the sum of the kernel's weights.

    Returns:
        The filtered map ("valid": 2 rows and columns smaller), a 2D float64
        NumPy array.
    """

    kernel = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0]) * gain / 16.0
    layer = DepthwiseConv2D(3, padding="valid", use_bias=False)
    layer.build((1, *x.shape, 1))
    layer.set_weights([kernel[:, :, None, None].astype("float32")])
    y = layer(np.asarray(x, "float32")[None, :, :, None])
    return keras.ops.convert_to_numpy(y)[0, :, :, 0].astype("float64")


# Toy CNNs with optional skip connections, their data and their training
# (claims 1-3: residual.py, residual_branch.py, stochastic_depth.py).

BRANCHES = ("preact", "conv_relu", "conv_relu_conv1x1")


def add_toy_training_arguments(parser, *, train_images, test_images, epochs, batch_size):
    """Adds the options claims 1-3 share to `parser`: the toy CNN's width,
    the shapes data's image size and split sizes, and the training (epochs,
    batch size, Adam's learning rate, `--eager`). The per-claim defaults are
    the keyword arguments."""
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--train-images", type=int, default=train_images)
    parser.add_argument("--test-images", type=int, default=test_images)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument(
        "--eager", action="store_true", help="train without compiling (faster for tiny sizes)"
    )


def shapes_classification(num_train, num_test, image_size, seed=0):
    """`((x_train, y_train), (x_test, y_test))`: the embedded shapes data's
    classification task (one shape an image, 3 classes)."""
    return tuple(
        shapes_dataset(split, num_images=n, image_size=image_size, task="classification", seed=seed)
        for split, n in (("train", num_train), ("test", num_test))
    )


class BlockSwitch(keras.layers.Layer):
    """Ends a toy block: `[x, branch]` to `x + branch` (`residual`) or to
    `branch` while its non-trainable weight `on` is 1, and to `x` (the block
    removed) when `on` is 0."""

    def __init__(self, residual, **kwargs):
        super().__init__(**kwargs)
        self.residual = residual

    def build(self, input_shape):
        self.on = self.add_weight(shape=(), initializer="ones", trainable=False, name="on")

    def call(self, inputs):
        x, branch = inputs
        if self.residual:
            return x + self.on * branch
        return self.on * branch + (1.0 - self.on) * x

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def toy_cnn(
    depth,
    *,
    residual,
    branch="preact",
    width=16,
    image_size=32,
    num_classes=3,
    drop_path_rate=0.0,
):
    """A CNN of `depth` blocks of one shape, with or without skip connections.

    A 3x3 stride-2 stem convolution to `width` channels, then `depth` blocks
    at that width and resolution, then batch norm, ReLU, global average
    pooling and a `Dense` of `num_classes` logits named `logits`. Block `i`
    (from 1) is a branch of layers named `block{i}_*` (its 3x3 convolution
    `block{i}_conv`) ended by a `BlockSwitch` named `block{i}_switch`:
    `x + branch(x)` when `residual`, else `branch(x)`. The branches:

    - `"preact"`: batch norm, ReLU, 3x3 convolution (the pre-activation
      ResNet's; stacked without skips, a plain conv-BN-ReLU net);
    - `"conv_relu"`: 3x3 convolution, batch norm, ReLU (adds only values >= 0);
    - `"conv_relu_conv1x1"`: the same, then a 1x1 convolution.

    Args:
        depth: number of blocks (3x3 convolutions after the stem).
        residual: whether each block adds its input (a skip connection).
        branch: one of `BRANCHES`.
        width: channels of the stem and of every block.
        image_size: input height and width (3 channels).
        num_classes: logits of the classifier.
        drop_path_rate: stochastic-depth rate of the last block, growing
            linearly from 0 at the first (as in `keras_cvlec.build_resnet`);
            residual nets only.

    Returns:
        A `keras.Model` from images to logits.

    Example:

    >>> toy_cnn(8, residual=True).get_layer("block8_conv").kernel.shape
    (3, 3, 16, 16)
    """
    if branch not in BRANCHES:
        raise ValueError(f"branch must be one of {BRANCHES}. Received: branch={branch!r}")
    if drop_path_rate and not residual:
        raise ValueError(
            "drop_path_rate needs residual=True (a plain block has no branch to "
            f"drop). Received: drop_path_rate={drop_path_rate!r}"
        )

    def conv(size, name, strides=1):
        return keras.layers.Conv2D(
            width, size, strides, padding="same", kernel_initializer="he_normal", name=name
        )

    def norm(name):
        # Momentum 0.9: the moving statistics must settle within a short run.
        return keras.layers.BatchNormalization(momentum=0.9, name=name)

    inputs = keras.Input((image_size, image_size, 3))
    x = conv(3, "stem_conv", strides=2)(inputs)
    for i in range(1, depth + 1):
        relu = keras.layers.ReLU(name=f"block{i}_relu")
        if branch == "preact":
            layers = [norm(f"block{i}_bn"), relu, conv(3, f"block{i}_conv")]
        else:
            layers = [conv(3, f"block{i}_conv"), norm(f"block{i}_bn"), relu]
            if branch == "conv_relu_conv1x1":
                layers.append(conv(1, f"block{i}_conv1x1"))
        if drop_path_rate:
            rate = drop_path_rate * (i - 1) / max(depth - 1, 1)
            layers.append(StochasticDepth(rate, name=f"block{i}_drop_path"))
        y = x
        for layer in layers:
            y = layer(y)
        x = BlockSwitch(residual, name=f"block{i}_switch")([x, y])
    x = keras.layers.ReLU(name="head_relu")(norm("head_bn")(x))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    kind = "residual" if residual else "plain"
    return keras.Model(inputs, outputs, name=f"{kind}{depth}_{branch}")


def fit_classifier(model, data, *, epochs, batch_size, learning_rate, eager=False):
    """Trains `model` (logits) with Adam and cross-entropy on `data`,
    `((x_train, y_train), (x_test, y_test))`, testing after every epoch.
    Seed the run with `keras.utils.set_random_seed` before building `model`.
    `eager` runs Keras without compiling (`run_eagerly`): faster for tiny
    models, where compiling the steps costs more than running them.

    Returns:
        The history dict: `loss`, `accuracy`, `val_loss`, `val_accuracy`
        (on the test split), one float an epoch.
    """
    (x_train, y_train), test = data
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        run_eagerly=eager,
    )
    history = model.fit(
        x_train, y_train, batch_size=batch_size, epochs=epochs, validation_data=test, verbose=0
    )
    return {key: [float(v) for v in values] for key, values in history.history.items()}


# Segmentation (claims 8 and 12): the shapes data, the boundary band, training,
# scores and figures.

# Distances (pixels) to a label boundary at which IoU is scored.
BAND_WIDTHS = (1, 2, 4, 8)
# Background, circle, square, triangle (CLASS_NAMES).
MASK_COLORS = ("#202020", "#e6550d", "#3182bd", "#31a354")


def add_segmentation_arguments(parser):
    """The options of the segmentation scripts: the data, the U-Net's size
    and the training."""
    parser.add_argument("--size", type=int, default=48, help="image height and width (px)")
    parser.add_argument("--train-images", type=int, default=1024)
    parser.add_argument("--test-images", type=int, default=256)
    parser.add_argument(
        "--epochs", type=int, default=12, help="0: score the untrained models (--quick)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--filters", type=int, default=16, help="U-Net's first-level width")
    parser.add_argument("--depth", type=int, default=3, help="U-Net's down-sampling steps")
    parser.add_argument("--examples", type=int, default=3, help="test images drawn")
    parser.add_argument("--seed", type=int, default=0)


def segmentation_data(args):
    """`(train_images, train_masks), (test_images, test_masks)` of the
    embedded shapes data at `args.size`."""
    return tuple(
        shapes_dataset(split, num_images=count, image_size=args.size)
        for split, count in (("train", args.train_images), ("test", args.test_images))
    )


def boundary_band(masks, width):
    """The pixels within `width` pixels of a label boundary.

    A pixel is in the band when the `(2 * width + 1)`-pixel square window
    around it holds more than one label, i.e. where a max filter and a min
    filter of the mask differ. The image border is not a boundary.

    Args:
        masks: int array `(N, H, W)` of labels.
        width: int >= 1, the distance (pixels, Chebyshev) to a boundary.

    Returns:
        A boolean array shaped like `masks`.
    """

    def window(reduce):
        out = np.asarray(masks)
        for axis in (1, 2):
            pad = [(width, width) if a == axis else (0, 0) for a in range(out.ndim)]
            padded = np.pad(out, pad, mode="edge")
            windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * width + 1, axis=axis)
            out = reduce(windows, axis=-1)
        return out

    return window(np.max) != window(np.min)


def mean_iou(truth, predicted, num_classes, where=None):
    """Mean over classes of |truth ∩ predicted| / |truth ∪ predicted|,
    counted over the pixels `where` (all when None); classes absent from
    both are left out (as `keras_cvlec.metrics.MeanIoU` does)."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    if where is not None:
        truth, predicted = truth[where], predicted[where]
    confusion = np.bincount(
        num_classes * truth.ravel() + predicted.ravel(), minlength=num_classes**2
    ).reshape(num_classes, num_classes)
    intersection = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - intersection
    present = union > 0
    return float(np.mean(intersection[present] / union[present]))


def train_segmentation(model, images, masks, *, epochs, batch_size):
    """Trains `model` (logits out) on `images` and integer `masks` with the
    package's segmentation recipe (`keras_cvlec.training.RECIPES["unet"]`:
    AdamW with warm-up and cosine decay, BatchNorm momentum for the run's
    length) and a cross-entropy; returns the loss of every epoch and the
    seconds it took."""
    run = resolve_recipe(
        RECIPES["unet"],
        batch_size=batch_size,
        steps_per_epoch=math.ceil(len(images) / batch_size),
        epochs=epochs,
    )
    run.set_norm_momentum(model)
    model.compile(
        optimizer=run.optimizer(model),
        loss=SparseCategoricalCrossentropy(from_logits=True),
    )
    start = time.perf_counter()
    history = model.fit(images, masks, batch_size=batch_size, epochs=epochs, verbose=0)
    return {"losses": history.history["loss"], "train_seconds": time.perf_counter() - start}


def train_and_score(model, train, test, args):
    """Trains `model` on `train` for `args.epochs` epochs
    (`train_segmentation`; none under `--quick`) and scores it on `test`
    (pixel accuracy, mean IoU, mean IoU within each of `BAND_WIDTHS` pixels
    of a true boundary, and `keras_cvlec.metrics.MeanIoU` as a cross-check).

    Returns:
        `(row, predicted)`: the model's JSON row and its predicted masks.
    """
    test_images, test_masks = test
    row = {"params": int(model.count_params())}
    if args.epochs:
        row.update(
            train_segmentation(model, *train, epochs=args.epochs, batch_size=args.batch_size)
        )
        row["train_images_per_s"] = args.train_images * args.epochs / row["train_seconds"]
    else:
        row.update(losses=[], train_seconds=0.0, train_images_per_s=None)
    scores = predict_scores(model, test_images, args.batch_size)
    predicted = np.argmax(scores, axis=-1)
    metric = MeanIoU(len(CLASS_NAMES), from_logits=True)
    metric.update_state(test_masks, scores)
    row.update(
        output_shape=list(scores.shape),
        accuracy=float(np.mean(predicted == test_masks)),
        mean_iou=mean_iou(test_masks, predicted, len(CLASS_NAMES)),
        keras_mean_iou=float(metric.result()),
        band_iou={
            str(width): mean_iou(
                test_masks, predicted, len(CLASS_NAMES), boundary_band(test_masks, width)
            )
            for width in BAND_WIDTHS
        },
    )
    return row, predicted


def predict_scores(model, images, batch_size):
    """`model.predict`, except for one batch off JAX (`--quick`): a direct
    call then skips the graph `predict` traces for each model (about a
    second on TensorFlow), while JAX, which would compile a direct call op by
    op, compiles the whole of `predict` at once."""
    if len(images) <= batch_size and keras.backend.backend() != "jax":
        return keras.ops.convert_to_numpy(model(images, training=False))
    return model.predict(images, batch_size=batch_size, verbose=0)


def segmentation_checks(rows, test_masks):
    """The checks both segmentation scripts make of their trained `rows`."""
    fractions = [float(boundary_band(test_masks, width).mean()) for width in BAND_WIDTHS]
    return {
        "outputs_have_the_input_size_and_classes": all(
            row["output_shape"] == [*test_masks.shape, len(CLASS_NAMES)] for row in rows
        ),
        "numpy_mean_iou_matches_keras_metric": all(
            abs(row["mean_iou"] - row["keras_mean_iou"]) < 1e-5 for row in rows
        ),
        "losses_finite": all(np.isfinite(row["losses"]).all() for row in rows),
        "band_grows_with_width": 0 < fractions[0]
        and all(a < b for a, b in zip(fractions, fractions[1:]))
        and fractions[-1] < 1,
    }, dict(zip(map(str, BAND_WIDTHS), fractions))


def plot_band_iou(ax, rows):
    """Mean IoU within 1, 2, 4, 8 pixels of a boundary and over all pixels,
    one line a model (`rows` with `"name"`, `"band_iou"` and `"mean_iou"`)."""
    labels = [f"≤ {width} px" for width in BAND_WIDTHS] + ["all pixels"]
    for row in rows:
        values = [row["band_iou"][str(width)] for width in BAND_WIDTHS] + [row["mean_iou"]]
        ax.plot(labels, values, marker="o", label=row["name"])
    ax.set_xlabel("pixels scored: distance to a true label boundary")
    ax.set_ylabel("mean IoU (test)")
    ax.set_title("IoU near boundaries and overall")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_mask_examples(fig, images, masks, predictions):
    """Fills `fig` (a figure or sub-figure with constrained layout) with one
    row an example: the image, the true mask and every model's predicted
    mask (`predictions`: `{title: masks}`), with a legend of the classes."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    cmap = ListedColormap(MASK_COLORS)
    columns = {"image": images, "true mask": masks, **predictions}
    axes = fig.subplots(len(images), len(columns), squeeze=False)
    for row in range(len(images)):
        for col, (title, arrays) in enumerate(columns.items()):
            ax = axes[row, col]
            if title == "image":
                ax.imshow(arrays[row])
            else:
                ax.imshow(arrays[row], cmap=cmap, vmin=0, vmax=len(MASK_COLORS) - 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
    fig.legend(
        handles=[Patch(color=c, label=n) for c, n in zip(MASK_COLORS, CLASS_NAMES)],
        loc="outside lower center",
        ncol=len(CLASS_NAMES),
        fontsize=8,
        frameon=False,
    )


def seeded(build, seed):
    """`build()` after `keras.utils.set_random_seed(seed)`: every model
    starts from the same seed whatever was built before it."""
    keras.utils.set_random_seed(seed)
    return build()
