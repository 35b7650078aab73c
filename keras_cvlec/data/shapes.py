"""An embedded synthetic data set: coloured shapes on textured backgrounds.

Needs no download and no TensorFlow: images are drawn with NumPy, so the data
feeds `model.fit` on every backend. Each image holds 1 to `max_shapes`
circles, squares and triangles of random size, position and colour, drawn
over a smooth random texture plus pixel noise. Every image comes with a
per-pixel class mask (0 background, 1 circle, 2 square, 3 triangle; later
shapes cover earlier ones) and an image-level label: the class covering the
most pixels. `shapes_dataset` draws 1 to 3 shapes an image for segmentation
and one for classification.

Deterministic: the same `(split, seed, num_images, image_size)` gives the same
arrays on every machine.

This module also holds its loader: `load_dataset("shapes", ...)` serves it
as an `ArrayDataset`, a `keras.utils.PyDataset`.
"""

import numpy as np

from keras_cvlec.data.options import SPLITS, DatasetInfo
from keras_cvlec.data.pydataset import ArrayDataset
from keras_cvlec.tasks import TRAINABLE_TASKS
from keras_cvlec.utils.validation import (
    check_choice,
    check_image_size,
    check_positive_int,
    check_seed,
)

__all__ = ["CLASS_NAMES", "make_shapes", "shapes_dataset"]

CLASS_NAMES = ("background", "circle", "square", "triangle")
DEFAULT_IMAGE_SIZE = 64
DEFAULT_SPLIT_SIZES = {"train": 2048, "validation": 256, "test": 256}
# Classification images hold one shape, as CIFAR's hold one object: with
# several, the label (the largest shape's class) asks a classifier to compare
# areas, and a ResNet-18 on 2048 images memorises instead (validation accuracy
# ~0.4 after 28 epochs at 64 pixels, and after 14 at 128).
DEFAULT_MAX_SHAPES = {"segmentation": 3, "classification": 1}


def _texture(rng, size):
    """A smooth random colour field: a few random low-frequency waves."""
    coords = np.linspace(0.0, 1.0, size, dtype="float32")
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    texture = np.zeros((size, size, 3), "float32")
    for _ in range(3):
        fy, fx = rng.uniform(0.5, 4.0, 2)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * (fy * yy + fx * xx) + phase)
        texture += wave[..., None] * rng.uniform(-0.12, 0.12, 3).astype("float32")
    return texture + rng.uniform(0.25, 0.75, 3).astype("float32")


def _shape_mask(kind, rng, yy, xx, size):
    """A boolean mask of one random circle, square or triangle."""
    radius = rng.uniform(0.08, 0.22) * size
    cy, cx = rng.uniform(radius, size - radius, 2)
    if kind == 1:  # circle
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    if kind == 2:  # square, axis-aligned
        half = radius * 0.85
        return (np.abs(yy - cy) <= half) & (np.abs(xx - cx) <= half)
    # triangle: three vertices around the centre, inside all three edges
    angle = rng.uniform(0, 2 * np.pi)
    angles = angle + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
    vy, vx = cy + radius * np.sin(angles), cx + radius * np.cos(angles)
    inside = np.ones_like(yy, bool)
    for i in range(3):
        j = (i + 1) % 3
        edge = (vx[j] - vx[i]) * (yy - vy[i]) - (vy[j] - vy[i]) * (xx - vx[i])
        inside &= edge >= 0
    return inside


def make_shapes(num_images, image_size=64, *, seed=0, max_shapes=3, noise=0.05):
    """Draws `num_images` images with their masks and labels.

    Args:
        num_images: int >= 1.
        image_size: int >= 16, the height and width.
        seed: int seed of the drawing.
        max_shapes: int >= 1, the most shapes in one image.
        noise: standard deviation of the Gaussian pixel noise.

    Returns:
        A dict with `"images"` float32 `(N, S, S, 3)` in `[0, 1]`, `"masks"`
        int32 `(N, S, S)` in `0..3` and `"labels"` int32 `(N,)` in `1..3`.

    Example:

    >>> data = make_shapes(4, image_size=32, seed=0)
    >>> data["images"].shape, data["masks"].shape, data["labels"].shape
    ((4, 32, 32, 3), (4, 32, 32), (4,))
    """
    num_images = check_positive_int("num_images", num_images)
    image_size = check_positive_int("image_size", image_size, minimum=16)
    max_shapes = check_positive_int("max_shapes", max_shapes)
    rng = np.random.default_rng(check_seed("seed", seed, maximum=None))
    grid = np.arange(image_size, dtype="float32") + 0.5
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    images = np.empty((num_images, image_size, image_size, 3), "float32")
    masks = np.zeros((num_images, image_size, image_size), "int32")
    for index in range(num_images):
        image = _texture(rng, image_size)
        mask = masks[index]
        for _ in range(rng.integers(1, max_shapes + 1)):
            kind = int(rng.integers(1, len(CLASS_NAMES)))
            shape = _shape_mask(kind, rng, yy, xx, image_size)
            image[shape] = rng.uniform(0.0, 1.0, 3)
            mask[shape] = kind
        image += rng.normal(0.0, noise, image.shape).astype("float32")
        images[index] = np.clip(image, 0.0, 1.0)
    counts = np.stack([(masks == k).sum((1, 2)) for k in range(1, len(CLASS_NAMES))], 1)
    labels = (counts.argmax(1) + 1).astype("int32")
    return {"images": images, "masks": masks, "labels": labels}


def shapes_dataset(
    split="train", *, num_images=None, image_size=64, task="segmentation", seed=0, max_shapes=None
):
    """One split of the embedded shapes data set as NumPy arrays.

    The splits are drawn from disjoint random streams (`seed` and the split
    name), so train, validation and test never share an image.

    Args:
        split: `"train"`, `"validation"` or `"test"`.
        num_images: images in the split; defaults to 2048 / 256 / 256.
        image_size: height and width.
        task: `"segmentation"` (targets are masks) or `"classification"`
            (targets are image labels, `1..3` shifted to `0..2`).
        seed: int seed of the whole data set; None reads as 0, so the data
            set is the same in every run.
        max_shapes: the most shapes in one image; None for the task's
            default: 3 for segmentation, 1 for classification.

    Returns:
        `(images, targets)`: float32 `(N, S, S, 3)` and int32 masks
        `(N, S, S)` or labels `(N,)`.

    Example:

    >>> x, y = shapes_dataset("test", num_images=8, image_size=32)
    >>> x.shape, y.shape
    ((8, 32, 32, 3), (8, 32, 32))
    """
    check_choice("split", split, SPLITS)
    check_choice("task", task, TRAINABLE_TASKS)
    if num_images is None:
        num_images = DEFAULT_SPLIT_SIZES[split]
    data = make_shapes(
        num_images,
        image_size,
        max_shapes=DEFAULT_MAX_SHAPES[task] if max_shapes is None else max_shapes,
        seed=np.random.SeedSequence(
            [check_seed("seed", seed) or 0, SPLITS.index(split)]
        ).generate_state(1)[0],
    )
    if task == "segmentation":
        return data["images"], data["masks"]
    return data["images"], data["labels"] - 1


def _load_shapes(name, options):
    """The `"shapes"` data set's loader: `(ArrayDataset, DatasetInfo)` for
    `name` (`"shapes"`) and its `LoaderOptions`."""
    task = options.resolve_task(name, ("segmentation", "classification"))
    height, width = check_image_size(options.image_size, DEFAULT_IMAGE_SIZE)
    if height != width:
        raise ValueError(
            f"The {name!r} data set has square images only. Received: "
            f"image_size={options.image_size!r}"
        )
    images, targets = shapes_dataset(
        options.split,
        num_images=options.num_images,
        image_size=height,
        task=task,
        seed=options.seed,
    )
    class_names = CLASS_NAMES if task == "segmentation" else CLASS_NAMES[1:]
    info = DatasetInfo(
        name,
        task,
        len(class_names),
        class_names,
        (height, width),
        num_examples=len(images),
    )
    dataset = ArrayDataset(
        images,
        targets,
        batch_size=options.batch_size,
        shuffle=options.shuffle,
        seed=options.seed,
        transform=options.transform(task, info.num_classes),
    )
    return dataset, info
