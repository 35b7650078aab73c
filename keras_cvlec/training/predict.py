"""`predict`: the library function behind `keras-cvlec predict`."""

import os

import keras
import numpy as np

from keras_cvlec.training.files import atomic_write, check_output_folder, write_json
from keras_cvlec.training.loading import load_trained_model
from keras_cvlec.training.plots import mask_colors
from keras_cvlec.utils.validation import check_positive_int

__all__ = ["OVERLAY_OPACITY", "output_stems", "predict"]

OVERLAY_OPACITY = 0.5


def _open_8_bit(path, mode):
    """The image at `path` as a PIL image of `mode` ("RGB" or "L") with 8
    bits a channel: 16-bit grayscale keeps its high byte, as
    `tf.io.decode_image` (the training pipeline's decoder) does, where PIL's
    `convert` would clip it to white."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode.startswith("I;16"):
                image = Image.fromarray((np.asarray(image, "uint16") >> 8).astype("uint8"))
            return image.convert(mode)
    except FileNotFoundError:
        raise FileNotFoundError(f"No image file at {path!r}.") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path!r} is not an image file PIL can read.") from None


def _read_image(path, input_size, channels):
    """The image at `path` as float32 `(H, W, channels)` in `[0, 1]` at the
    model's input size (if fixed), and its original `(width, height)`.
    Resized as the training pipeline resizes: bilinear without
    antialiasing, rounded to 8 bits."""
    image = _open_8_bit(path, "RGB" if channels == 3 else "L")
    array = np.asarray(image, "float32").reshape(image.size[::-1] + (channels,))
    if input_size is not None:
        resized = keras.ops.image.resize(array, input_size, antialias=False)
        array = np.round(keras.ops.convert_to_numpy(resized))
    return array / 255.0, image.size


def _save_png(image, path):
    atomic_write(path, lambda temporary: image.save(temporary, format="PNG"))


def output_stems(paths):
    """One output name stem per input path, never the same for two inputs:
    the file's stem, and for stems that several inputs share (`a/cat.png`,
    `b/cat.jpg`) the stem followed by `-2`, `-3`, ... in input order.

    Example:

    >>> output_stems(["a/cat.png", "b/cat.jpg", "dog.png"])
    ['cat', 'cat-2', 'dog']
    """
    stems = [os.path.splitext(os.path.basename(os.fspath(path)))[0] for path in paths]
    taken = set(stems)
    seen = {}
    unique = []
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
        name = stem
        if seen[stem] > 1:
            count = seen[stem]
            while f"{stem}-{count}" in taken:
                count += 1
            name = f"{stem}-{count}"
            taken.add(name)
        unique.append(name)
    return unique


def _write_mask(path, stem, original_size, classes, output_dir, num_classes):
    """Writes `<stem>_mask.png` (class ids) and `<stem>_overlay.png`."""
    from PIL import Image

    mask = Image.fromarray(classes.astype("uint8"), mode="L").resize(original_size, Image.NEAREST)
    mask_path = os.path.join(output_dir, f"{stem}_mask.png")
    _save_png(mask, mask_path)
    image = _open_8_bit(path, "RGB")
    colors = Image.fromarray(mask_colors(num_classes)[np.asarray(mask)], mode="RGB")
    overlay_path = os.path.join(output_dir, f"{stem}_overlay.png")
    _save_png(Image.blend(image, colors, OVERLAY_OPACITY), overlay_path)
    return {"image": path, "mask": mask_path, "overlay": overlay_path}


def _image_files(paths):
    """`paths` with each folder replaced by its image files (sorted)."""
    from keras_cvlec.data.folders import IMAGE_EXTENSIONS

    files = []
    for path in map(os.fspath, paths):
        if not os.path.isdir(path):
            files.append(path)
            continue
        found = sorted(
            os.path.join(path, name)
            for name in os.listdir(path)
            if name.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not found:
            raise ValueError(
                f"Folder {path!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)})."
            )
        files += found
    if not files:
        raise ValueError("`images` must list at least one image file or folder. Received: []")
    return files


def _softmax(logits):
    exponentials = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def predict(model_path, images, output_dir=None, *, top_k=5):
    """Runs a saved model on image files.

    Images are read with PIL and, if the model's input size is fixed,
    resized to it as the training pipeline resizes. Segmentation models
    write, for each image `NAME.*`, a mask of class ids `NAME_mask.png`
    (8-bit, the image's size) and `NAME_overlay.png` (the mask's colours over
    the image) into `output_dir`; inputs that share a name (`a/cat.png`,
    `b/cat.png`) get `cat-2`, ... (`output_stems`), so no output is written
    twice. Classification models return the `top_k` classes of each image
    (names from the run's `run.json`, else class indices), also written to
    `output_dir/predictions.json` when `output_dir` is given.

    Args:
        model_path: a `.keras` file, e.g. a run's `best.keras`.
        images: a list of image files and folders (a folder stands for
            its image files, sorted by name).
        output_dir: the folder for the outputs (required for segmentation).
        top_k: int >= 1, the classes listed per image.

    Returns:
        A list with one dict per image: `{"image", "mask", "overlay"}` paths,
        or `{"image", "top_k": [[class_name, probability], ...]}`.
    """
    if isinstance(images, (str, os.PathLike)) or not all(
        isinstance(path, (str, os.PathLike)) for path in images
    ):
        raise TypeError(f"`images` must be a list of paths. Received: images={images!r}")
    images = _image_files(images)
    top_k = check_positive_int("top_k", top_k)
    if output_dir is not None:
        check_output_folder("output_dir", output_dir)
    trained = load_trained_model(model_path)
    if trained.task == "segmentation" and output_dir is None:
        raise ValueError("A segmentation model writes masks: `output_dir` must be given.")
    channels = trained.model.input_shape[-1]
    inputs = [_read_image(os.fspath(path), trained.input_size, channels) for path in images]
    if output_dir is not None:
        os.makedirs(output_dir, exist_ok=True)
    results = []
    for path, stem, (array, size) in zip(images, output_stems(images), inputs):
        # A direct call: `predict` would compile a function per image size.
        scores = keras.ops.convert_to_numpy(trained.model(array[None], training=False))[0]
        if trained.task == "segmentation":
            results.append(
                _write_mask(
                    os.fspath(path),
                    stem,
                    size,
                    scores.argmax(-1),
                    output_dir,
                    len(trained.class_names),
                )
            )
            continue
        probabilities = _softmax(scores) if trained.from_logits else scores
        best = np.argsort(-probabilities)[:top_k]
        results.append(
            {
                "image": os.fspath(path),
                "top_k": [[trained.class_names[k], float(probabilities[k])] for k in best],
            }
        )
    if trained.task == "classification" and output_dir is not None:
        write_json(os.path.join(output_dir, "predictions.json"), results)
    return results
