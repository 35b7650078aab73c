"""Folders of images: class sub-folders and images/ + masks/ pairs, their
layouts, void mask values and bad files."""

import os
import re
import warnings

import numpy as np
import pytest

from keras_cvlec.data import (
    ArrayDataset,
    folders,
    load_dataset,
    load_folder,
    map_batches,
    set_epoch,
)

pytestmark = pytest.mark.backend_independent

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("tensorflow")

COLOURS = {"cat": 0, "dog": 128, "owl": 255}  # one grey level per class
HEIGHT, WIDTH = 12, 10


def write_png(path, array, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, "uint8"), mode).save(path)


def segmentation_pair(index, num_classes=3):
    """An RGB image and a mask with values `0..num_classes-1` (all of them)."""
    rng = np.random.default_rng(index)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3))
    mask = (np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH) + index) % num_classes
    return image, mask


def write_segmentation(folder, count, num_classes=3, extension=".png"):
    for i in range(count):
        image, mask = segmentation_pair(i, num_classes)
        write_png(os.path.join(folder, "images", f"img{i}{extension}"), image)
        write_png(os.path.join(folder, "masks", f"img{i}.png"), mask)


def write_masks(folder, masks):
    """Random images with the masks `masks` (arrays, or PIL images)."""
    for i, mask in enumerate(masks):
        write_png(os.path.join(folder, "images", f"img{i}.png"), segmentation_pair(i)[0])
        if isinstance(mask, np.ndarray):
            mask = Image.fromarray(mask.astype("uint8"))
        os.makedirs(os.path.join(folder, "masks"), exist_ok=True)
        mask.save(os.path.join(folder, "masks", f"img{i}.png"))


def write_classes(folder, counts, first_grey=0):
    """`counts[name]` flat grey images per class, grey levels `first_grey`,
    `first_grey + 1`, ... in class order: an image's grey names it."""
    grey = first_grey
    for name, count in counts.items():
        for i in range(count):
            write_png(os.path.join(folder, name, f"{i}.png"), np.full((4, 4, 3), grey))
            grey += 1


def collect(dataset):
    images, targets = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(targets)


def greys(dataset):
    """`{grey level: label}` of a dataset of `write_classes` images."""
    images, labels = collect(dataset)
    return dict(zip(np.round(images[:, 0, 0, 0] * 255).astype(int).tolist(), labels.tolist()))


@pytest.fixture(scope="module")
def classes_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("classes")
    for name, grey in COLOURS.items():
        for i in range(5):
            write_png(root / name / f"{name}{i}.png", np.full((HEIGHT, WIDTH, 3), grey))
    return root


@pytest.fixture(scope="module")
def masks_folder(tmp_path_factory):
    """train/ masks use classes 0..2, validation/ only 0..1."""
    root = tmp_path_factory.mktemp("masks")
    write_segmentation(root / "train", 4, num_classes=3)
    write_segmentation(root / "validation", 2, num_classes=2)
    return root


def test_class_folders_random_split(classes_folder):
    train, info = load_folder(classes_folder, "train", image_size=(6, 4), batch_size=8)
    validation, val_info = load_folder(classes_folder, "validation", image_size=(6, 4))
    (x_train, y_train), (x_val, y_val) = collect(train), collect(validation)
    assert info.task == "classification" and info.class_names == ("cat", "dog", "owl")
    assert info.splits == ("train", "validation") and info.ignore_class is None
    # One image of each 5-image class is held out (stratified), none of them in train.
    assert info.num_examples == 12 and val_info.num_examples == 3
    assert (
        info.image_size == (6, 4) and x_train.shape == (12, 6, 4, 3) and x_val.shape == (3, 6, 4, 3)
    )
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32
    assert np.bincount(y_train).tolist() == [4, 4, 4] and y_val.tolist() == [0, 1, 2]
    # Every image is one flat grey: its label's colour, scaled to [0, 1].
    for x, y in ((x_train, y_train), (x_val, y_val)):
        expected = np.array(list(COLOURS.values()))[y] / 255.0
        np.testing.assert_allclose(
            x, np.broadcast_to(expected[:, None, None, None], x.shape), atol=1e-6
        )
    with pytest.raises(ValueError, match="has no 'test' split. Its splits: 'train', 'validation'"):
        load_folder(classes_folder, "test")
    with pytest.raises(
        ValueError, match="has no 'segmentation' task. It supports: 'classification'"
    ):
        load_folder(classes_folder, task="segmentation")
    with pytest.raises(ValueError, match="num_classes=4 but .* has 3 class sub-folders"):
        load_folder(classes_folder, num_classes=4)
    one_hot, _ = load_folder(classes_folder, "validation", image_size=(6, 4), one_hot=True)
    np.testing.assert_array_equal(collect(one_hot)[1], np.eye(3, dtype="float32")[y_val])


def test_train_and_test_folders_carve_a_stratified_validation_split(tmp_path):
    write_classes(tmp_path / "train", {"a": 20, "b": 3, "c": 1})
    write_classes(tmp_path / "test", {"a": 1, "b": 1, "c": 1}, first_grey=100)
    train, info = load_folder(tmp_path, image_size=4, seed=5)
    validation, val_info = load_folder(tmp_path, "validation", image_size=4, seed=5)
    test, test_info = load_folder(tmp_path, "test", image_size=4)
    train, validation = greys(train), greys(validation)
    assert info.splits == ("train", "validation", "test")
    # 10 % of a (2 of 20), at least one of b, none of the single c.
    assert sorted(validation.values()) == [0, 0, 1] and val_info.num_examples == 3
    assert info.num_examples == 21 and not train.keys() & validation.keys()
    assert sorted(train | validation) == list(range(24))
    assert greys(test) == {100: 0, 101: 1, 102: 2} and test_info.num_examples == 3
    again, _ = load_folder(tmp_path, "validation", image_size=4, seed=5)
    assert greys(again) == validation
    subset, subset_info = load_folder(tmp_path, image_size=4, seed=5, num_images=5)
    assert subset_info.num_examples == 5 and greys(subset).keys() <= train.keys()


@pytest.mark.parametrize("name", ["val", "valid", "validation"])
def test_train_and_validation_folders(tmp_path, name):
    write_classes(tmp_path / "train", {"a": 2, "b": 2})
    write_classes(tmp_path / name, {"a": 1, "b": 1}, first_grey=50)
    train, info = load_dataset(tmp_path, image_size=4)
    validation, val_info = load_dataset(tmp_path, "validation", image_size=4)
    assert greys(train) == {0: 0, 1: 0, 2: 1, 3: 1} and greys(validation) == {50: 0, 51: 1}
    assert info.splits == ("train", "validation") and val_info.num_examples == 2
    with pytest.raises(ValueError, match="has no 'test' split"):
        load_folder(tmp_path, "test")


@pytest.mark.parametrize(
    "folders, match",
    [
        (("train", "val", "validation"), "has validation/ and val/: keep one validation folder"),
        (("train", "val", "valid"), "has val/ and valid/"),
        (("test",), "has test/ but no train/ sub-folder"),
        (("val", "test"), "has val/ and test/ but no train/"),
    ],
)
def test_ambiguous_layouts(tmp_path, folders, match):
    for folder in folders:
        write_classes(tmp_path / folder, {"a": 1, "b": 1})
    with pytest.raises(ValueError, match=match):
        load_folder(tmp_path)


def test_every_split_has_the_training_classes(tmp_path):
    write_classes(tmp_path / "train", {"a": 1, "b": 1, "c": 1})
    write_classes(tmp_path / "validation", {"a": 1, "c": 1, "d": 1})
    with pytest.raises(
        ValueError,
        match="'validation' split .*validation' must have the class sub-folders of .*train'. "
        "It has 1 that the training split lacks: 'd'; it lacks 1: 'b'",
    ):
        load_folder(tmp_path, "validation")


def test_the_same_image_has_the_same_label_in_every_split(tmp_path):
    # A hidden folder (Jupyter's checkpoints) is not a class.
    write_classes(tmp_path / "train", {"a": 1, "b": 1, "c": 1})
    write_classes(tmp_path / "validation", {"a": 1, "b": 1, "c": 1})
    os.makedirs(tmp_path / "validation" / ".ipynb_checkpoints")
    train, info = load_folder(tmp_path, image_size=4)
    validation, _ = load_folder(tmp_path, "validation", image_size=4)
    assert info.class_names == ("a", "b", "c")
    assert greys(train) == greys(validation) == {0: 0, 1: 1, 2: 2}


def test_mask_folders_exact_and_num_classes_from_train(masks_folder):
    dataset, info = load_dataset(masks_folder, "validation", image_size=(HEIGHT, WIDTH))
    images, masks = collect(dataset)
    assert info.task == "segmentation" and info.num_classes == 3  # inferred from train/
    assert info.class_names == ("0", "1", "2") and info.ignore_class == 255
    assert info.splits == ("train", "validation") and info.num_examples == 2
    assert images.shape == (2, HEIGHT, WIDTH, 3) and masks.shape == (2, HEIGHT, WIDTH)
    assert masks.dtype == np.int32
    for i in range(2):
        image, mask = segmentation_pair(i, num_classes=2)
        np.testing.assert_allclose(images[i], image / 255.0, atol=1e-6)
        np.testing.assert_array_equal(masks[i], mask)
    small, _ = load_folder(masks_folder, "train", image_size=5, num_images=3, shuffle=False)
    images, masks = collect(small)
    assert images.shape == (3, 5, 5, 3) and set(np.unique(masks)) <= {0, 1, 2}
    with pytest.raises(ValueError, match="has no 'test' split. Its splits: 'train', 'validation'"):
        load_folder(masks_folder, "test")
    with pytest.raises(
        ValueError, match="must be < num_classes=2 \\(given\\), but masks '.*train.*' reach 2"
    ):
        load_folder(masks_folder, num_classes=2)


def test_random_split_of_mask_folder(tmp_path):
    write_segmentation(tmp_path, 10, extension=".jpg")
    train, info = load_dataset(tmp_path, image_size=8, batch_size=20, seed=3)
    validation, val_info = load_folder(tmp_path, "validation", image_size=8, seed=3)
    (images, masks), (val_images, _) = collect(train), collect(validation)
    assert images.shape == (9, 8, 8, 3) and val_images.shape == (1, 8, 8, 3)
    assert info.num_examples == 9 and val_info.num_examples == 1
    assert not any(np.allclose(val_images[0], image) for image in images)
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert set(np.unique(masks)) <= {0, 1, 2} and info.num_classes == 3


def void_masks():
    """Three masks with the classes 0..2 and a void (255) border."""
    masks = []
    for i in range(3):
        mask = segmentation_pair(i)[1]
        mask[0] = 255
        masks.append(mask)
    return masks


def test_void_is_no_class_and_stays_in_the_masks(tmp_path):
    write_masks(tmp_path / "train", void_masks())
    write_masks(tmp_path / "val", void_masks()[:1])
    dataset, info = load_folder(tmp_path, image_size=(HEIGHT, WIDTH), shuffle=False)
    _, masks = collect(dataset)
    assert info.num_classes == 3 and info.ignore_class == 255
    np.testing.assert_array_equal(masks, np.stack(void_masks()))
    _, info = load_folder(tmp_path, num_classes=3)
    assert info.num_classes == 3
    with pytest.warns(
        UserWarning, match=r"\[3, 4, 5, 6, 7, 8, 9, 10, 11, 12 \(and 242 more\)\] never occur"
    ):
        _, info = load_folder(tmp_path, ignore_class=None)
    assert info.num_classes == 256 and info.ignore_class is None
    with pytest.raises(ValueError, match="other than ignore_class=255 must be < num_classes=2"):
        load_folder(tmp_path, num_classes=2)
    # A class the training masks lack is refused in the validation masks.
    masks = void_masks()
    masks[0][1, 1] = 3
    write_masks(tmp_path / "val", masks)
    with pytest.raises(
        ValueError,
        match="num_classes=3 \\(inferred from the masks of .*train'\\), but masks '.*val.*img0.png' reach 3",
    ):
        load_folder(tmp_path, "validation")


def test_sparse_mask_values_warn(tmp_path):
    write_masks(tmp_path, [np.full((HEIGHT, WIDTH), 5), np.tile([0, 2], (HEIGHT, WIDTH // 2))])
    with pytest.warns(
        UserWarning, match=r"class values \[0, 2, 5\]; \[1, 3, 4\] never occur .*num_classes=6"
    ):
        _, info = load_folder(tmp_path)
    assert info.num_classes == 6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_folder(tmp_path, num_classes=6)
    assert not [w for w in caught if "never occur" in str(w.message)]


def test_binary_masks_saved_as_0_and_255(tmp_path):
    write_masks(tmp_path, [np.tile([0, 255], (HEIGHT, WIDTH // 2))] * 2)
    with pytest.raises(ValueError, match="hold only 0 and 255.*re-save the masks as 0/1"):
        load_folder(tmp_path)
    # 0/1 masks whose 0 is void leave one class, as 0/255 masks do.
    write_masks(tmp_path, [np.tile([0, 1], (HEIGHT, WIDTH // 2))] * 2)
    with pytest.raises(ValueError, match=r"the values \[0, 1\]: .*at least two classes"):
        load_folder(tmp_path, ignore_class=0)
    write_masks(tmp_path, [np.tile([0, 1, 2, 2, 1], (HEIGHT, WIDTH // 5))] * 2)
    _, info = load_folder(tmp_path, ignore_class=0)
    assert info.num_classes == 3 and info.ignore_class == 0


def test_palette_masks_are_read_as_indices(tmp_path):
    indices = [segmentation_pair(i)[1] for i in range(2)]
    palette = Image.fromarray(indices[0].astype("uint8")).convert("P")
    palette.putpalette([200, 10, 10, 10, 200, 10, 10, 10, 200])  # colours unlike 0, 1, 2
    for split in ("train", "val"):
        write_masks(tmp_path / split, [palette, indices[1]])  # "P" and "L"
    dataset, info = load_folder(tmp_path, image_size=(HEIGHT, WIDTH), shuffle=False)
    np.testing.assert_array_equal(collect(dataset)[1], np.stack(indices))
    assert info.num_classes == 3


def write_bad_files(folder):
    """Six image/mask pairs, five of them with a bad file; the bad paths and
    what is wrong with each."""
    write_segmentation(folder, 6)
    images, masks = os.path.join(folder, "images"), os.path.join(folder, "masks")

    def cut(path, count):
        with open(path, "r+b") as file:
            file.truncate(os.path.getsize(path) - count)
        return path

    def replace(index, extension, mode, data):
        os.remove(os.path.join(images, f"img{index}.png"))
        path = os.path.join(images, f"img{index}{extension}")
        Image.fromarray(segmentation_pair(index)[0].astype("uint8")).convert(mode).save(path, data)
        return path

    with open(os.path.join(images, "img1.png"), "wb") as file:
        file.write(b"not an image")
    return {
        os.path.join(images, "img1.png"): "unreadable (UnidentifiedImageError",
        cut(os.path.join(masks, "img2.png"), 30): "unreadable (OSError: image file is truncated",
        replace(3, ".jpg", "RGB", "TIFF"): "TIFF data, which TensorFlow does not decode",
        replace(4, ".bmp", "P", "BMP"): "a palette BMP, which TensorFlow decodes wrongly",
        # Pillow reads a PNG without its last 4 bytes (a checksum); TensorFlow does not.
        cut(os.path.join(images, "img5.png"), 4): "TensorFlow cannot decode it (Invalid PNG data",
    }


def test_bad_files_are_reported_together_or_skipped(tmp_path):
    bad = write_bad_files(str(tmp_path / "train"))
    write_segmentation(tmp_path / "val", 1)
    with pytest.raises(ValueError) as error:
        load_folder(tmp_path)
    message = str(error.value)
    assert message.startswith(f"5 bad files in {str(tmp_path / 'train')!r}")
    for path, reason in bad.items():
        assert f"\n  {path!r}: {reason}" in message
    assert "skip_bad_files=True" in message
    with pytest.warns(
        UserWarning, match="Skipped 5 bad files .*img1.png.*img3.jpg.*img4.bmp.* \\(and 2 more\\)"
    ):
        dataset, info = load_folder(
            tmp_path, image_size=(HEIGHT, WIDTH), skip_bad_files=True, shuffle=False
        )
    images, masks = collect(dataset)
    assert info.num_examples == 1 and info.num_classes == 3
    np.testing.assert_allclose(images[0], segmentation_pair(0)[0] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(masks[0], segmentation_pair(0)[1])
    # The validation split reads the training masks to count the classes:
    # a bad one is named where it is.
    train_masks = re.escape(repr(str(tmp_path / "train" / "masks")))
    with pytest.warns(UserWarning, match=f"Skipped 1 bad files in {train_masks}"):
        load_folder(tmp_path, "validation", skip_bad_files=True)


def test_more_than_twenty_bad_files_are_counted(tmp_path):
    # 24 + 1 empty files: 2 of "a" held out for validation, 23 to train on.
    for name, count in (("a", 24), ("b", 1)):
        os.makedirs(tmp_path / name)
        for i in range(count):
            (tmp_path / name / f"{i:02d}.jpg").touch()
    with pytest.raises(ValueError, match="23 bad files in .*:(\n  '[^\n]*){20}\n  and 3 more\n"):
        load_folder(tmp_path)


def test_empty_folder(tmp_path):
    for task in (None, "segmentation"):
        with pytest.raises(
            ValueError,
            match=re.escape(f"No images found in '{tmp_path}'. Allowed extensions: .bmp"),
        ):
            load_folder(tmp_path, task=task)


def bad_folder(tmp_path, case):
    write_segmentation(tmp_path, 3)
    masks = tmp_path / "masks"
    if case == "empty":
        for name in os.listdir(tmp_path / "images"):
            os.remove(tmp_path / "images" / name)
        os.rename(masks, tmp_path / "unused")
        os.makedirs(masks)
    elif case == "names":
        for i in range(3):
            os.rename(masks / f"img{i}.png", masks / f"other{i}.png")
    elif case == "size":
        write_png(masks / "img1.png", np.zeros((HEIGHT, WIDTH + 1)))
    elif case == "mode":
        write_png(masks / "img2.png", np.zeros((HEIGHT, WIDTH, 3)))
    return tmp_path


@pytest.mark.parametrize(
    "case, match",
    [
        ("empty", "No images found in .*images.*Allowed extensions: .bmp"),
        (
            "names",
            "3 images without a mask: 'img0', 'img1', 'img2'; 3 masks without an image: 'other0'",
        ),
        ("size", "img1.png' is 11x12 \\(width x height\\) but its image .*img1.png' is 10x12"),
        (
            "mode",
            "img2.png' has PIL mode 'RGB': masks must be 8-bit grayscale \\('L'\\) or palette",
        ),
    ],
)
def test_bad_mask_folders(tmp_path, case, match):
    with pytest.raises(ValueError, match=match):
        load_folder(bad_folder(tmp_path, case))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            dict(ignore_class="void"),
            TypeError,
            "`ignore_class` must be an int >= 0. Received: ignore_class='void'",
        ),
        (
            dict(ignore_class=True),
            TypeError,
            "`ignore_class` must be an int >= 0. Received: ignore_class=True",
        ),
        (
            dict(ignore_class=-1),
            ValueError,
            "`ignore_class` must be >= 0. Received: ignore_class=-1",
        ),
        (
            dict(ignore_class=256),
            ValueError,
            "`ignore_class` must be None or in 0..255. Received: ignore_class=256",
        ),
        (
            dict(skip_bad_files=1),
            TypeError,
            "`skip_bad_files` must be True or False. Received: skip_bad_files=1",
        ),
    ],
)
def test_bad_folder_arguments(classes_folder, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_folder(classes_folder, **kwargs)


@pytest.mark.parametrize("name", ["shapes", "cifar10"])
@pytest.mark.parametrize(
    "kwargs", [dict(num_classes=3), dict(ignore_class=0), dict(skip_bad_files=True)]
)
def test_folder_options_refused_for_named_data_sets(name, kwargs):
    with pytest.raises(
        ValueError, match=f"are for folders of images only. .* with the '{name}' data set"
    ):
        load_dataset(name, **kwargs)


def order(dataset):
    """The grey levels of a dataset of `write_classes` images, in the order
    of its batches."""
    images, _ = collect(dataset)
    return np.round(images[:, 0, 0, 0] * 255).astype(int).tolist()


def test_seed_none_shuffles_anew(tmp_path):
    write_classes(tmp_path, {"a": 12, "b": 12})
    # 22 training images: two unseeded shuffles agree with probability 1/22!.
    first, second = (order(load_folder(tmp_path, image_size=4, seed=None)[0]) for _ in range(2))
    assert sorted(first) == sorted(second) and first != second
    seeded = [order(load_folder(tmp_path, image_size=4, seed=0)[0]) for _ in range(2)]
    assert seeded[0] == seeded[1]


def test_a_split_set_to_an_epoch_takes_the_order_of_that_epoch(tmp_path):
    """A seeded training split orders epoch `e` by `(seed, e)`, whatever the
    global TensorFlow seed: one loaded afresh and set to epoch 2 (a resumed
    run's) takes the order of the third pass over another, then moves on to
    the fourth; `map_batches` keeps the epoch."""
    import tensorflow as tf

    write_classes(tmp_path, {"a": 10, "b": 10})
    passes = load_folder(tmp_path, image_size=4, batch_size=4, seed=3)[0]
    orders = [order(passes) for _ in range(4)]
    assert len(set(map(tuple, orders))) == 4 and sorted(orders[0]) == sorted(orders[3])
    tf.random.set_seed(123)
    resumed = map_batches(
        load_folder(tmp_path, image_size=4, batch_size=4, seed=3)[0],
        lambda images, labels: (images, labels),
    )
    set_epoch(resumed, 2)
    assert [order(resumed) for _ in range(2)] == orders[2:]
    set_epoch(resumed, 0)
    assert order(resumed) == orders[0]
    # Unseeded or not shuffled: the epoch changes nothing, and is accepted.
    set_epoch(load_folder(tmp_path, image_size=4, seed=None)[0], 1)
    set_epoch(load_folder(tmp_path, "validation", image_size=4)[0], 1)


def test_set_epoch_refuses_bad_arguments(tmp_path):
    import tensorflow as tf

    with pytest.raises(TypeError, match=r"from a keras_cvlec loader .* Received: dataset of type"):
        set_epoch(tf.data.Dataset.range(3), 1)
    data = ArrayDataset(np.zeros((2, 2, 2, 3)), np.arange(2), shuffle=True)
    with pytest.raises(ValueError, match=r"`epoch` must be >= 0. Received: epoch=-1"):
        set_epoch(data, -1)
    with pytest.raises(TypeError, match=r"`epoch` must be an int >= 0. Received: epoch=1.0"):
        set_epoch(data, 1.0)


def test_seed_none_carves_one_validation_share_per_process(tmp_path, monkeypatch):
    write_classes(tmp_path, {"a": 30, "b": 30})

    def share(seed):
        return set(order(load_folder(tmp_path, "validation", image_size=4, seed=seed)[0]))

    shares = {seed: share(seed) for seed in (0, 1, 2)}
    assert shares[0] != shares[1] != shares[2] != shares[0]
    for process_seed in (1, 2):
        monkeypatch.setattr(folders, "_PROCESS_SEED", process_seed)
        validation = share(None)
        train = set(order(load_folder(tmp_path, image_size=4, seed=None, shuffle=False)[0]))
        assert validation == shares[process_seed] and not train & validation
        assert train | validation == set(range(60))
