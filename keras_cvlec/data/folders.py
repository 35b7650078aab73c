"""Folders of the user's own images as `tf.data` pipelines.

Two layouts, told apart by the folder's contents:

- classification: one sub-folder per class (`cats/`, `dogs/`, ...), read by
  `keras.utils.image_dataset_from_directory`; the class names are the
  sorted sub-folder names.
- segmentation: `images/` and `masks/` sub-folders; each image
  (`.bmp .gif .jpeg .jpg .png`) has a mask `masks/<same stem>.png`, an
  8-bit grayscale (PIL mode "L") PNG of class indices with the image's
  height and width. `num_classes` is the largest mask value + 1 over all the
  folder's masks, or given.

Splits: a folder with `train/`, `validation/` and/or `test/` sub-folders (each
in one of the layouts above) serves the one named by `split`. A folder
without them is split at random by `seed`: `"train"` is 90 % of its images,
`"validation"` the other 10 % (as `image_dataset_from_directory`'s
`validation_split=0.1`), and there is no `"test"`.

Masks are checked (names, sizes, mode and values) with Pillow before any
pipeline is built, so a bad folder fails at once with the files named.
"""

import os

import numpy as np

from keras_cvlec.data.registry import (
    SPLITS,
    DatasetInfo,
    batch_tf_dataset,
    check_image_size,
    check_loader_options,
    check_task,
    resolve_transform,
)
from keras_cvlec.utils.validation import check_positive_int

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
VALIDATION_FRACTION = 0.1
DEFAULT_IMAGE_SIZE = 128


def _few(names, count=5):
    """`'a', 'b', 'c' (and 4 more)`: the first `count` of `names`."""
    names = sorted(names)
    more = f" (and {len(names) - count} more)" if len(names) > count else ""
    return ", ".join(repr(n) for n in names[:count]) + more


def _is_segmentation(folder):
    return all(os.path.isdir(os.path.join(folder, sub)) for sub in ("images", "masks"))


def _split_folders(path):
    """The `train/validation/test` sub-folders of `path` (a dict)."""
    return {s: os.path.join(path, s) for s in SPLITS if os.path.isdir(os.path.join(path, s))}


def _files(folder, extensions):
    """`{stem: path}` of the files in `folder` with one of `extensions`."""
    files = {}
    for name in sorted(os.listdir(folder)):
        stem, extension = os.path.splitext(name)
        if extension.lower() not in extensions:
            continue
        if stem in files:
            raise ValueError(
                f"Two files in {folder!r} have the stem {stem!r}: "
                f"{os.path.basename(files[stem])!r} and {name!r}."
            )
        files[stem] = os.path.join(folder, name)
    return files


def _image_mask_pairs(folder):
    """`(image paths, mask paths)` of `folder/images` and `folder/masks`,
    matched by stem; raises on a folder without images or on unmatched
    names."""
    images = _files(os.path.join(folder, "images"), IMAGE_EXTENSIONS)
    masks = _files(os.path.join(folder, "masks"), (".png",))
    if not images:
        raise ValueError(
            f"No images found in {os.path.join(folder, 'images')!r}. Allowed "
            f"extensions: {', '.join(IMAGE_EXTENSIONS)}."
        )
    without_mask = images.keys() - masks.keys()
    without_image = masks.keys() - images.keys()
    if without_mask or without_image:
        raise ValueError(
            f"Image and mask names of {folder!r} don't match: every "
            "images/<stem>.<ext> needs masks/<stem>.png. "
            f"{len(without_mask)} images without a mask: {_few(without_mask) or '-'}; "
            f"{len(without_image)} masks without an image: {_few(without_image) or '-'}."
        )
    stems = sorted(images)
    return [images[s] for s in stems], [masks[s] for s in stems]


def _check_masks(image_paths, mask_paths):
    """The largest value over the masks; raises on a mask that is not an
    8-bit grayscale PNG or whose size differs from its image's."""
    from PIL import Image

    largest = 0
    for image_path, mask_path in zip(image_paths, mask_paths):
        with Image.open(mask_path) as mask, Image.open(image_path) as image:
            if mask.mode != "L":
                raise ValueError(
                    f"Mask {mask_path!r} has PIL mode {mask.mode!r}: masks must be "
                    "8-bit grayscale ('L') PNGs of class indices."
                )
            if mask.size != image.size:
                raise ValueError(
                    f"Mask {mask_path!r} is {mask.size[0]}x{mask.size[1]} (width x "
                    f"height) but its image {image_path!r} is {image.size[0]}x{image.size[1]}."
                )
            largest = max(largest, int(np.asarray(mask).max()))
    return largest


def _segmentation_num_classes(path, folders, pairs, num_classes):
    """`num_classes`, checked against (or inferred from) the masks."""
    largest = {folder: _check_masks(*pairs[folder]) for folder in folders}
    if num_classes is None:
        return max(largest.values()) + 1
    num_classes = check_positive_int("num_classes", num_classes, minimum=2)
    bad = {folder: value for folder, value in largest.items() if value >= num_classes}
    if bad:
        raise ValueError(
            f"Mask values must be < num_classes={num_classes}, but masks in "
            f"{_few(bad)} reach {max(bad.values())}. Pass num_classes=None to infer "
            f"it from the masks of {os.fspath(path)!r}."
        )
    return num_classes


def _random_split(count, split, seed, folder):
    """The indices of `split` when `folder` has no split sub-folders."""
    order = np.random.default_rng(seed).permutation(count)
    num_validation = int(VALIDATION_FRACTION * count)
    indices = order[count - num_validation :] if split == "validation" else order[: count - num_validation]
    if len(indices) == 0:
        raise ValueError(
            f"Split {split!r} of {folder!r} is empty: {count} images, "
            f"{VALIDATION_FRACTION:.0%} held out for validation."
        )
    return np.sort(indices)


def _segmentation_dataset(path, root, split, random_split, size, num_classes, seed):
    import tensorflow as tf

    folders = list(_split_folders(path).values()) or [path]
    pairs = {folder: _image_mask_pairs(folder) for folder in folders}
    num_classes = _segmentation_num_classes(path, folders, pairs, num_classes)
    image_paths, mask_paths = pairs[root]
    if random_split:
        indices = _random_split(len(image_paths), split, seed, root)
        image_paths = [image_paths[i] for i in indices]
        mask_paths = [mask_paths[i] for i in indices]

    def decode(image_path, mask_path):
        image = tf.io.decode_image(tf.io.read_file(image_path), channels=3, expand_animations=False)
        image = tf.cast(tf.round(tf.image.resize(image, size, method="bilinear")), "uint8")
        mask = tf.io.decode_png(tf.io.read_file(mask_path), channels=1)
        mask = tf.image.resize(mask, size, method="nearest")
        return image, tf.cast(mask[..., 0], "int32")

    dataset = tf.data.Dataset.from_tensor_slices((image_paths, mask_paths))
    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset, tuple(str(k) for k in range(num_classes))


def _classification_dataset(root, split, random_split, size, num_classes, seed):
    import keras
    import tensorflow as tf

    dataset = keras.utils.image_dataset_from_directory(
        root,
        label_mode="int",
        image_size=size,
        batch_size=None,
        shuffle=random_split,
        seed=seed,
        validation_split=VALIDATION_FRACTION if random_split else None,
        subset={"train": "training", "validation": "validation"}.get(split) if random_split else None,
        verbose=False,
    )
    class_names = tuple(dataset.class_names)
    if num_classes is not None and check_positive_int("num_classes", num_classes, minimum=2) != len(class_names):
        raise ValueError(
            f"num_classes={num_classes} but {root!r} has {len(class_names)} class "
            f"sub-folders: {_few(class_names)}."
        )
    dataset = dataset.map(
        lambda image, label: (tf.cast(tf.round(image), "uint8"), tf.cast(label, "int32")),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset, class_names


def load_folder(
    path,
    split="train",
    *,
    task=None,
    image_size=None,
    batch_size=32,
    shuffle=None,
    augment=False,
    num_images=None,
    seed=0,
    one_hot=False,
    num_classes=None,
):
    """Loads a folder of images as batches of `(images, targets)`.

    Args:
        path: the folder (see the module docstring for its layouts).
        split: `"train"`, `"validation"` or `"test"`.
        task: None for the folder's layout, or the task it must have.
        image_size: int or `(height, width)`; None: 128.
        batch_size: int >= 1.
        shuffle: None means True for `"train"`.
        augment: False, True (`default_augmentation`) or a callable
            `(images, targets) -> (images, targets)`; training split only.
        num_images: None or the number of examples to read.
        seed: int seed of the random split, shuffling and augmentation.
        one_hot: classification only: labels one-hot float32 `(B, C)`.
        num_classes: None to infer (class sub-folders, or largest mask
            value + 1), or the expected number of classes.

    Returns:
        `(dataset, info)`: a batched `tf.data.Dataset` of float32 images in
        `[0, 1]` and int32 labels `(B,)` or masks `(B, H, W)`, and its
        `DatasetInfo` (segmentation class names are `"0"`, `"1"`, ...).

    Example:

    ```python
    dataset, info = load_folder("my_photos", "train", image_size=64)
    ```
    """
    if not os.path.isdir(path):
        raise ValueError(f"`path` must be an existing folder. Received: path={path!r}")
    shuffle, augment = check_loader_options(
        split, batch_size, shuffle, augment, num_images, seed, one_hot
    )
    seed = seed or 0
    size = check_image_size(image_size, DEFAULT_IMAGE_SIZE)
    split_folders = _split_folders(path)
    if split_folders and split not in split_folders:
        raise ValueError(
            f"Folder {os.fspath(path)!r} has no {split!r} sub-folder. Its splits: "
            f"{', '.join(repr(s) for s in split_folders)}."
        )
    if not split_folders and split == "test":
        raise ValueError(
            f"Folder {os.fspath(path)!r} has no 'test' split: add train/, validation/ "
            "and test/ sub-folders to hold out a test set. Without them only 'train' "
            "(90 %) and 'validation' (10 %) exist."
        )
    root = split_folders.get(split, path)
    natural = "segmentation" if _is_segmentation(root) else "classification"
    task = check_task(os.fspath(path), task, (natural,))
    if task == "segmentation":
        dataset, class_names = _segmentation_dataset(
            path, root, split, not split_folders, size, num_classes, seed
        )
    else:
        dataset, class_names = _classification_dataset(root, split, not split_folders, size, num_classes, seed)
    if num_images is not None:
        dataset = dataset.take(num_images)
    info = DatasetInfo(os.fspath(path), task, len(class_names), class_names, size)
    augment = resolve_transform(augment, one_hot, task, info.num_classes, seed)
    return batch_tf_dataset(dataset, batch_size, shuffle=shuffle, seed=seed, augment=augment), info
