"""PNG plots of a run: learning curves, predictions next to the truth, and
per-class results."""

import numpy as np

from keras_cvlec.training.files import atomic_write

__all__ = [
    "mask_colors",
    "plot_learning_curves",
    "plot_per_class",
    "plot_predictions",
]


def _save(figure, path):
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=100))


def plot_learning_curves(rows, path):
    """One panel per quantity (loss, accuracy, ...), training and validation
    values per epoch.

    Args:
        rows: the epochs' logs, e.g. `callbacks.read_log(...)`: dicts with
            `"epoch"`, `"loss"`, `"val_loss"`, ...
        path: where the PNG goes.
    """
    from matplotlib.figure import Figure

    names = [key for key in rows[0] if key != "epoch" and not key.startswith("val_")]
    figure = Figure(figsize=(4 * len(names), 3.2), layout="constrained")
    epochs = [row["epoch"] + 1 for row in rows]
    for axes, name in zip(figure.subplots(1, len(names), squeeze=False)[0], names):
        axes.plot(epochs, [row[name] for row in rows], "o-", label="train")
        if f"val_{name}" in rows[0]:
            axes.plot(epochs, [row[f"val_{name}"] for row in rows], "o-", label="validation")
        axes.set(title=name, xlabel="epoch")
        axes.legend()
    _save(figure, path)


def mask_colors(num_classes):
    """`(num_classes, 3)` uint8 colours, class 0 black."""
    from matplotlib import colormaps

    colors = colormaps["tab10" if num_classes <= 11 else "tab20"](np.arange(num_classes) % 20)
    colors = (colors[:, :3] * 255).astype("uint8")
    colors[0] = 0
    return colors


def _image_grid(rows, columns, cell_size, title_lines):
    """A figure of `rows` x `columns` axes for images, each cell
    `cell_size` (width, height) inches with room above for its title.

    The margins are fixed: a constrained layout measures every axes' ticks
    to place them (8 rows of masks: 0.63 s a plot with it, 0.47 s without).
    """
    from matplotlib.figure import Figure

    width, height = cell_size[0] * columns, cell_size[1] * rows
    title, bottom = 0.05 + 0.15 * title_lines, 0.05  # inches
    image_height = cell_size[1] - title - bottom / rows
    figure = Figure(figsize=(width, height))
    grid = figure.subplots(
        rows,
        columns,
        squeeze=False,
        gridspec_kw={
            "left": 0.1 / width,
            "right": 1 - 0.1 / width,
            "bottom": bottom / height,
            "top": 1 - title / height,
            "hspace": title / image_height,
        },
    )
    return figure, grid


def plot_predictions(images, targets, predictions, class_names, path):
    """A grid of images with their true and predicted masks (one row each),
    or with their true and predicted labels in the title.

    Args:
        images: float `(N, H, W, C)` in `[0, 1]`.
        targets: int masks `(N, H, W)` or labels `(N,)`; mask values
            outside the classes (void, e.g. 255) are drawn white.
        predictions: predicted class ids, the shape of `targets`.
        class_names: the class names, indexed by class id.
        path: where the PNG goes.
    """
    images = np.clip(images, 0.0, 1.0)
    if images.shape[-1] == 1:
        images = images[..., 0]
    segmentation = np.ndim(targets) == 3
    count = len(images)
    if segmentation:
        void = len(class_names)
        colors = np.concatenate([mask_colors(void), np.full((1, 3), 255, "uint8")])
        targets = np.where((targets >= 0) & (targets < void), targets, void)
        figure, grid = _image_grid(count, 3, (2.0, 2.0), title_lines=1)
        for row, image, target, prediction in zip(grid, images, targets, predictions):
            for axes, picture, title in zip(
                row,
                (image, colors[target], colors[prediction]),
                ("image", "true mask", "predicted mask"),
            ):
                axes.imshow(picture)
                axes.set_title(title, fontsize=8)
                axes.axis("off")
    else:
        columns = min(count, 4)
        rows = -(-count // columns)
        figure, grid = _image_grid(rows, columns, (2.2, 2.4), title_lines=2)
        grid = grid.ravel()
        for axes in grid:
            axes.axis("off")
        for axes, image, target, prediction in zip(grid, images, targets, predictions):
            axes.imshow(image)
            color = "green" if target == prediction else "red"
            axes.set_title(
                f"true: {class_names[target]}\npredicted: {class_names[prediction]}",
                fontsize=8,
                color=color,
            )
    _save(figure, path)


def plot_per_class(report, path, title=None):
    """Horizontal bars of each class's IoU (segmentation) or recall
    (classification), with their values and a dashed line at their mean.

    Args:
        report: a `keras_cvlec.training.report.class_report` dict; classes
            whose value is `None` get no bar and the label "n/a".
        path: where the PNG goes.
        title: the figure's title; by default "IoU per class" or "recall
            per class".

    Example:

    >>> plot_per_class(class_report(model, validation, ...), "per_class.png")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    score, label = ("iou", "IoU") if report["task"] == "segmentation" else ("recall", "recall")
    names = report["class_names"]
    values = [report["per_class"][name][score] for name in names]
    known = [value for value in values if value is not None]
    mean = sum(known) / len(known) if known else None
    figure = Figure(figsize=(6, 1.2 + 0.3 * len(names)), layout="constrained")
    axes = figure.subplots()
    bars = axes.barh(names, [value or 0.0 for value in values])
    axes.bar_label(
        bars,
        labels=["n/a" if value is None else f"{value:.2f}" for value in values],
        padding=3,
        fontsize=8,
    )
    if mean is not None:
        axes.axvline(
            mean, color="black", linestyle="--", linewidth=1, label=f"mean {label} {mean:.2f}"
        )
        axes.legend(loc="best", fontsize=8)
    axes.invert_yaxis()  # class 0 on top
    axes.set(xlim=(0.0, 1.12), xlabel=label, ylabel="class", title=title or f"{label} per class")
    _save(figure, path)
