"""Folders of the user's own images as `tf.data` pipelines.

Two tasks, told apart by the training folder's contents:

- classification: one sub-folder per class (`cats/`, `dogs/`, ...; their
  own sub-folders are read too, hidden ones such as `.ipynb_checkpoints`
  are not). The class names are the sorted sub-folder names of the
  training folder; validation and test folders must have the same ones, so
  a class has one label in every split.
- segmentation: `images/` and `masks/` sub-folders; each image has a mask
  `masks/<same stem>.png` of its height and width holding class indices: an
  8-bit grayscale ("L") PNG, or a palette ("P") PNG as VOC stores them, whose
  palette indices are the classes (the colours are not read). The value
  `ignore_class` (default 255, "void" in VOC and Cityscapes) marks pixels
  that belong to no class: it stays in the masks, and `DatasetInfo.ignore_class`
  tells the loss and metrics to leave it out (`ignore_class=None` makes
  every value a class). `num_classes` is the largest other value + 1 over
  the training masks (a warning names values below it that never occur),
  or given; validation and test masks must stay below it. Masks of only 0
  and 255 (a binary mask saved as 0/255) are refused, colour (RGB) masks
  too.

Image files: `.bmp .gif .jpeg .jpg .png .webp`.

Layouts and splits:

- a flat folder (the class sub-folders, or `images/` + `masks/`): `"train"`
  is 90 % of its images and `"validation"` the other 10 %, drawn by `seed`;
  no `"test"`.
- `train/` and `test/`: the validation split is 10 % of `train/`, drawn by
  `seed`.
- `train/` and one of `validation/`, `val/` or `valid/`, optionally `test/`.

A validation split carved out of a folder is disjoint from its training
split and takes about 10 % of every class (at least one image of a class
with two or more), so small classes are validated too. With `seed=None` it
is drawn once per process: the splits loaded in one run stay disjoint, and
another run draws another share.

Before a pipeline is built, every file the split needs (and, to infer
`num_classes`, every training mask) is decoded as the pipeline will decode
it (images by TensorFlow, masks by Pillow) and its format checked: a
truncated or corrupt file, or one TensorFlow cannot read (a `.jpg` that is
really TIFF) or reads wrongly (a palette BMP), would otherwise stop `fit`
midway or train on garbage. All of them are reported in one error, or left
out with a warning (`skip_bad_files=True`). Results are kept per file (path,
size and modification time), so loading the validation and test splits after
the training split reads no file twice. Cost on one core of a 2-core CPU:
0.2 ms per 32x32 PNG, 0.7 ms per 256x256 JPEG, 0.005 ms per file already
scanned.
"""

import collections
import functools
import os
import warnings

import numpy as np

from keras_cvlec.data._tf_pipeline import batch_tf_dataset
from keras_cvlec.data.options import SPLITS, DatasetInfo, LoaderOptions
from keras_cvlec.utils.validation import (
    check_bool,
    check_image_size,
    check_positive_int,
)

__all__ = ["IMAGE_EXTENSIONS", "load_folder"]

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp")
# The formats `tf.io.decode_image` reads, as Pillow names them (MPO: a
# camera's JPEG with a second picture inside).
IMAGE_FORMATS = ("BMP", "GIF", "JPEG", "MPO", "PNG", "WEBP")
MASK_MODES = ("L", "P")
VALIDATION_FOLDERS = ("validation", "val", "valid")
VALIDATION_FRACTION = 0.1
DEFAULT_IMAGE_SIZE = 128
LISTED_BAD_FILES = 20
SCAN_CACHE_SIZE = 1 << 20
# The seed of the validation share and `num_images` subset under seed=None:
# drawn once per process, so the training and validation splits a run loads
# one after the other stay disjoint.
_PROCESS_SEED = np.random.SeedSequence().entropy

_Scan = collections.namedtuple("_Scan", "problem size mode values")


def _few(names, count=5):
    """`'a', 'b', 'c' (and 4 more)`: the first `count` of `names`."""
    names = sorted(names)
    more = f" (and {len(names) - count} more)" if len(names) > count else ""
    return ", ".join(repr(n) for n in names[:count]) + more


def _is_segmentation(folder):
    return all(os.path.isdir(os.path.join(folder, sub)) for sub in ("images", "masks"))


def _has_images(folder):
    return any(
        name.lower().endswith(IMAGE_EXTENSIONS) for _, _, names in os.walk(folder) for name in names
    )


def _layout(path):
    """`{split: (folder, part)}` for the splits of `path`: `part` is None
    when the split is the whole folder, or `"train"`/`"validation"` for its
    share of a folder split by seed."""

    def has(name):
        return os.path.isdir(os.path.join(path, name))

    validation = [name for name in VALIDATION_FOLDERS if has(name)]
    if len(validation) > 1:
        raise ValueError(
            f"Folder {path!r} has {' and '.join(n + '/' for n in validation)}: keep "
            "one validation folder (named validation/, val/ or valid/)."
        )
    if not has("train"):
        held_out = validation + ["test"] * has("test")
        if held_out:
            raise ValueError(
                f"Folder {path!r} has {'/ and '.join(held_out)}/ but no train/ "
                "sub-folder: put the training images in train/ (or the class "
                "sub-folders, or images/ and masks/, directly in the folder for a "
                "seeded 90/10 train/validation split)."
            )
        return {"train": (path, "train"), "validation": (path, "validation")}
    train = os.path.join(path, "train")
    if validation:
        layout = {"train": (train, None), "validation": (os.path.join(path, validation[0]), None)}
    else:
        layout = {"train": (train, "train"), "validation": (train, "validation")}
    if has("test"):
        layout["test"] = (os.path.join(path, "test"), None)
    return layout


def _carve(labels, part, seed):
    """The sorted indices of `part` (`"train"` or `"validation"`) of the
    examples of class `labels`: about 10 % of every class, at least one of a
    class with two or more examples, go to validation, drawn by `seed`."""
    rng = np.random.default_rng(seed)
    in_validation = np.zeros(len(labels), bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, round(VALIDATION_FRACTION * len(members))) if len(members) >= 2 else 0
        in_validation[rng.permutation(members)[:count]] = True
    return np.flatnonzero(in_validation if part == "validation" else ~in_validation)


def _select(labels, folder, split, part, num_images, seed):
    """The indices of the examples of `split`: the whole folder or its part,
    then a seeded subset of `num_images` of them."""
    indices = np.arange(len(labels)) if part is None else _carve(labels, part, seed)
    if len(indices) == 0:
        raise ValueError(
            f"Split {split!r} of {folder!r} is empty: {len(labels)} images, "
            f"{VALIDATION_FRACTION:.0%} of every class held out for validation."
        )
    if num_images is not None and num_images < len(indices):
        indices = np.sort(np.random.default_rng(seed).choice(indices, num_images, replace=False))
    return indices


def _decode_problem(path):
    """None, or why `tf.io.decode_image` (the pipeline's decoder) fails on
    the image `path`."""
    import tensorflow as tf

    try:
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except tf.errors.OpError as error:
        reason = error.message.split("}}")[-1].split("[Op:")[0].strip()
        return f"TensorFlow cannot decode it ({reason})"
    return None


@functools.lru_cache(maxsize=SCAN_CACHE_SIZE)
def _scan(path, kind, file_size, mtime_ns):
    """The image or mask (`kind`) at `path` decoded as the pipeline will:
    masks by Pillow, images by TensorFlow (Pillow reads a PNG that lacks its
    last bytes; TensorFlow refuses it). `file_size` and `mtime_ns` only key
    the cache."""
    from PIL import Image

    try:
        with Image.open(path) as file:
            values = None
            if kind == "mask":
                file.load()
                if file.mode in MASK_MODES:
                    counts = np.bincount(np.asarray(file).ravel(), minlength=256)
                    values = frozenset(np.flatnonzero(counts).tolist())
            scan = _Scan(None, file.size, file.mode, values)
            data = file.format
    # Pillow raises OSError, SyntaxError, ValueError, ... on bad data.
    except Exception as error:  # noqa: BLE001
        return _Scan(f"unreadable ({type(error).__name__}: {error})", None, None, None)
    if kind == "mask":
        return scan if data == "PNG" else scan._replace(problem=f"{data} data, not PNG")
    if data not in IMAGE_FORMATS:
        return scan._replace(problem=f"{data} data, which TensorFlow does not decode")
    if data == "BMP" and scan.mode in ("1", "P"):
        return scan._replace(problem="a palette BMP, which TensorFlow decodes wrongly")
    return scan._replace(problem=_decode_problem(path))


def _scan_files(kinds):
    """`{path: _Scan}` for `kinds`, a dict `{path: "image" or "mask"}`."""
    scans = {}
    for path, kind in kinds.items():
        stat = os.stat(path)
        scans[path] = _scan(os.path.abspath(path), kind, stat.st_size, stat.st_mtime_ns)
    return scans


def _bad_files(scans, skip_bad_files):
    """The paths whose scan found a problem: an error naming them all, or
    (with `skip_bad_files`) a warning."""
    bad = {file: scan.problem for file, scan in scans.items() if scan.problem}
    # Their folder: a split's scans hold the training masks too.
    path = os.path.commonpath([os.path.dirname(file) for file in bad]) if bad else None
    if bad and not skip_bad_files:
        listed = "".join(f"\n  {file!r}: {bad[file]}" for file in sorted(bad)[:LISTED_BAD_FILES])
        more = f"\n  and {len(bad) - LISTED_BAD_FILES} more" if len(bad) > LISTED_BAD_FILES else ""
        raise ValueError(
            f"{len(bad)} bad files in {path!r} (training would stop at them or read "
            f"them wrongly):{listed}{more}\n"
            "Repair or remove them, or pass skip_bad_files=True (--skip-bad-files) to "
            "leave them (and their image or mask partners) out."
        )
    if bad:
        warnings.warn(
            f"Skipped {len(bad)} bad files in {path!r} (and their image or mask "
            f"partners): {_few(bad, count=3)}.",
            stacklevel=2,
        )
    return bad.keys()


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


def _check_masks(pairs, masks, scans):
    """Raises on a mask of `masks` that is not an "L" or "P" image, or on a
    mask of `pairs` whose size differs from its image's."""
    for mask in masks:
        if scans[mask].mode not in MASK_MODES:
            raise ValueError(
                f"Mask {mask!r} has PIL mode {scans[mask].mode!r}: masks must be 8-bit "
                "grayscale ('L') or palette ('P') PNGs of class indices."
            )
    for image, mask in pairs:
        (width, height), (image_width, image_height) = scans[mask].size, scans[image].size
        if (width, height) != (image_width, image_height):
            raise ValueError(
                f"Mask {mask!r} is {width}x{height} (width x height) but its image "
                f"{image!r} is {image_width}x{image_height}."
            )


def _infer_num_classes(folder, masks, scans, ignore_class):
    """The largest value of `masks` other than `ignore_class`, + 1; warns
    when values below it never occur."""
    seen = set().union(*(scans[mask].values for mask in masks))
    classes = sorted(seen - {ignore_class})
    if classes == [0] and ignore_class in seen:
        raise ValueError(
            f"The masks of {folder!r} hold only 0 and {ignore_class}, and "
            f"ignore_class={ignore_class} reads {ignore_class} as void (no class), "
            "which leaves one class. For a binary mask saved as 0/255, re-save the "
            "masks as 0/1 (e.g. `mask // 255`). (ignore_class=None would make every "
            f"value up to {ignore_class} a class.)"
        )
    # ignore_class=0 on 0/1 masks leaves class 1 alone: the model's class 0
    # would never be a target.
    if not classes or len(set(range(classes[-1] + 1)) - {ignore_class}) < 2:
        raise ValueError(
            f"The masks of {folder!r} hold the values {sorted(seen)}: segmentation "
            f"needs at least two classes (values other than ignore_class={ignore_class})."
        )
    missing = sorted(set(range(classes[-1])) - seen - {ignore_class})
    if missing:
        warnings.warn(
            f"The masks of {folder!r} hold the class values [{_few(classes, 10)}]; "
            f"[{_few(missing, 10)}] never occur but count as classes "
            f"(num_classes={classes[-1] + 1}). Renumber the classes 0, 1, 2, ... or pass num_classes to silence this.",
            stacklevel=2,
        )
    return classes[-1] + 1


def _segmentation_examples(
    layout, split, num_classes, ignore_class, skip_bad_files, num_images, seed
):
    """`((image paths, mask paths), num_classes)` of `split`, scanned and
    checked."""
    train_folder = layout["train"][0]
    folder, part = layout[split]
    if not _is_segmentation(folder):
        raise ValueError(
            f"The {split!r} split {folder!r} needs images/ and masks/ sub-folders, "
            f"as {train_folder!r} has."
        )
    images, masks = _image_mask_pairs(folder)
    indices = _select(np.zeros(len(images)), folder, split, part, num_images, seed)
    pairs = [(images[i], masks[i]) for i in indices]
    train_masks = _image_mask_pairs(train_folder)[1] if num_classes is None else []
    kinds = dict.fromkeys(train_masks, "mask")
    for image, mask in pairs:
        kinds.update({image: "image", mask: "mask"})
    scans = _scan_files(kinds)
    bad = _bad_files(scans, skip_bad_files)
    pairs = [(image, mask) for image, mask in pairs if image not in bad and mask not in bad]
    train_masks = [mask for mask in train_masks if mask not in bad]
    if not pairs:
        raise ValueError(f"No readable image and mask pairs left in split {split!r} of {folder!r}.")
    _check_masks(pairs, train_masks + [mask for _, mask in pairs], scans)
    if num_classes is None:
        num_classes = _infer_num_classes(train_folder, train_masks, scans, ignore_class)
        source = f"inferred from the masks of {train_folder!r}"
        hint = "Every class must occur in the training masks, or pass num_classes."
    else:
        num_classes = check_positive_int("num_classes", num_classes, minimum=2)
        source = "given"
        hint = "Pass num_classes=None to infer it from the training masks."
    too_large = {}
    for _, mask in pairs:
        values = scans[mask].values - {ignore_class}
        if values and max(values) >= num_classes:
            too_large[mask] = max(values)
    if too_large:
        void = "" if ignore_class is None else f" other than ignore_class={ignore_class}"
        raise ValueError(
            f"Mask values{void} must be < num_classes={num_classes} ({source}), but "
            f"masks {_few(too_large)} "
            f"reach {max(too_large.values())}. {hint}"
        )
    return tuple(map(list, zip(*pairs))), num_classes


def _class_names(folder):
    """The sorted sub-folder names of `folder`, hidden ones left out."""
    return sorted(
        entry.name
        for entry in os.scandir(folder)
        if entry.is_dir() and not entry.name.startswith(".")
    )


def _class_files(folder, class_names):
    """`(paths, int32 labels)` of the images under `folder/<class name>/`,
    sorted by class, then path."""
    paths, labels = [], []
    for label, name in enumerate(class_names):
        for root, folders, names in os.walk(os.path.join(folder, name)):
            folders[:] = sorted(f for f in folders if not f.startswith("."))
            files = [
                os.path.join(root, n) for n in sorted(names) if n.lower().endswith(IMAGE_EXTENSIONS)
            ]
            paths += files
            labels += [label] * len(files)
    return paths, np.array(labels, "int32")


def _classification_examples(layout, split, num_classes, skip_bad_files, num_images, seed):
    """`((image paths, labels), class names)` of `split`, scanned and
    checked; every split must have the training folder's classes."""
    train_folder = layout["train"][0]
    class_names = _class_names(train_folder)
    if not class_names:
        raise ValueError(
            f"Folder {train_folder!r} has images but no class sub-folders: put them in "
            "one sub-folder per class, or in images/ with their masks in masks/."
        )
    if num_classes is not None and check_positive_int("num_classes", num_classes, minimum=2) != len(
        class_names
    ):
        raise ValueError(
            f"num_classes={num_classes} but {train_folder!r} has {len(class_names)} class "
            f"sub-folders: {_few(class_names)}."
        )
    for other, (folder, part) in layout.items():
        names = set(class_names if part else _class_names(folder))
        extra, missing = names - set(class_names), set(class_names) - names
        if extra or missing:
            raise ValueError(
                f"The {other!r} split {folder!r} must have the class sub-folders of "
                f"{train_folder!r}. It has {len(extra)} that the training split lacks: "
                f"{_few(extra) or '-'}; it lacks {len(missing)}: {_few(missing) or '-'}."
            )
    folder, part = layout[split]
    paths, labels = _class_files(folder, class_names)
    if not paths:
        raise ValueError(
            f"No images found in the class sub-folders of {folder!r}. Allowed "
            f"extensions: {', '.join(IMAGE_EXTENSIONS)}."
        )
    indices = _select(labels, folder, split, part, num_images, seed)
    paths, labels = [paths[i] for i in indices], labels[indices]
    bad = _bad_files(_scan_files(dict.fromkeys(paths, "image")), skip_bad_files)
    keep = [i for i, file in enumerate(paths) if file not in bad]
    if not keep:
        raise ValueError(f"No readable images left in split {split!r} of {folder!r}.")
    return ([paths[i] for i in keep], labels[keep]), tuple(class_names)


def _read_mask(path):
    """The class indices of a mask file ("L" values or "P" palette
    indices), uint8 `(H, W)`."""
    from PIL import Image

    with Image.open(os.fsdecode(path)) as mask:
        return np.asarray(mask, "uint8")


def _tf_dataset(columns, task, size):
    """`(uint8 image, int32 target)` examples decoded from `columns`: image
    paths and labels, or image paths and mask paths."""
    import tensorflow as tf

    def decode(image_path, target):
        image = tf.io.decode_image(tf.io.read_file(image_path), channels=3, expand_animations=False)
        image = tf.cast(tf.round(tf.image.resize(image, size, method="bilinear")), "uint8")
        if task == "classification":
            return image, target
        mask = tf.numpy_function(_read_mask, [target], tf.uint8, stateful=False)
        mask = tf.image.resize(
            tf.ensure_shape(mask, (None, None))[..., None], size, method="nearest"
        )
        return image, tf.cast(mask[..., 0], "int32")

    dataset = tf.data.Dataset.from_tensor_slices(columns)
    return dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)


def _check_ignore_class(ignore_class):
    if ignore_class is None:
        return None
    ignore_class = check_positive_int("ignore_class", ignore_class, minimum=0)
    if ignore_class > 255:
        raise ValueError(
            f"`ignore_class` must be None or in 0..255. Received: ignore_class={ignore_class}"
        )
    return ignore_class


def load_folder(
    path, split="train", *, num_classes=None, ignore_class=255, skip_bad_files=False, **options
):
    """Loads a folder of images as batches of `(images, targets)`.

    Args:
        path: the folder (see the module docstring for its layouts).
        split: `"train"`, `"validation"` or `"test"` (the splits the
            folder's layout has).
        num_classes: None to infer (class sub-folders, or the largest mask
            value other than `ignore_class` + 1), or the expected number of
            classes.
        ignore_class: segmentation only: the mask value of pixels in no
            class (kept in the masks, `info.ignore_class`), an int in
            0..255; None makes every value a class.
        skip_bad_files: leave out, with a warning, the files found bad
            (see the module docstring) and their image or mask partners,
            instead of raising.
        **options: the options every loader takes, see `LoaderOptions`:
            `task` (None: the one the folder's layout holds), `image_size`
            (None: 128), `batch_size`, `shuffle`, `augment`, `num_images`
            (a subset of the split drawn by `seed`), `seed` (also of the
            validation share carved out of a folder), `one_hot`.

    Returns:
        `(dataset, info)`: a batched `tf.data.Dataset` of float32 images in
        `[0, 1]` and int32 labels `(B,)` or masks `(B, H, W)`, and its
        `DatasetInfo` (segmentation class names are `"0"`, `"1"`, ...).

    Example:

    ```python
    dataset, info = load_folder("my_photos", "train", image_size=64)
    info.splits, info.num_examples  # ('train', 'validation'), 1083
    ```
    """
    return _load_folder(
        path,
        LoaderOptions.from_keywords("load_folder", split, options),
        num_classes=num_classes,
        ignore_class=ignore_class,
        skip_bad_files=skip_bad_files,
    )


def _load_folder(path, options, *, num_classes=None, ignore_class=255, skip_bad_files=False):
    """`load_folder` with its `LoaderOptions` built."""
    if not os.path.isdir(path):
        raise ValueError(f"`path` must be an existing folder. Received: path={path!r}")
    ignore_class = _check_ignore_class(ignore_class)
    check_bool("skip_bad_files", skip_bad_files)
    size = check_image_size(options.image_size, DEFAULT_IMAGE_SIZE)
    split, num_images = options.split, options.num_images
    split_seed = _PROCESS_SEED if options.seed is None else options.seed
    path = os.fspath(path)
    layout = _layout(path)
    splits = tuple(s for s in SPLITS if s in layout)
    if split not in layout:
        raise ValueError(
            f"Folder {path!r} has no {split!r} split. Its splits: "
            f"{', '.join(repr(s) for s in splits)}. To hold out a test set, add a test/ "
            "sub-folder next to a train/ one."
        )
    train_folder = layout["train"][0]
    if not _has_images(train_folder):
        raise ValueError(
            f"No images found in {train_folder!r}. Allowed extensions: "
            f"{', '.join(IMAGE_EXTENSIONS)}."
        )
    natural = "segmentation" if _is_segmentation(train_folder) else "classification"
    task = options.resolve_task(path, (natural,))
    if task == "segmentation":
        columns, num_classes = _segmentation_examples(
            layout, split, num_classes, ignore_class, skip_bad_files, num_images, split_seed
        )
        class_names = tuple(str(k) for k in range(num_classes))
    else:
        columns, class_names = _classification_examples(
            layout, split, num_classes, skip_bad_files, num_images, split_seed
        )
        ignore_class = None
    info = DatasetInfo(
        path,
        task,
        len(class_names),
        class_names,
        size,
        num_examples=len(columns[0]),
        ignore_class=ignore_class,
        splits=splits,
    )
    dataset = batch_tf_dataset(
        _tf_dataset(columns, task, size),
        options.batch_size,
        shuffle=options.shuffle,
        seed=options.seed,
        augment=options.transform(task, info.num_classes),
    )
    return dataset, info
