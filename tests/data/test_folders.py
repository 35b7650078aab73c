"""Folders of images: class sub-folders and images/ + masks/ pairs."""

import os

import numpy as np
import pytest

from keras_cvlec.data import load_dataset, load_folder

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


def collect(dataset):
    images, targets = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(targets)


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
    validation, _ = load_folder(classes_folder, "validation", image_size=(6, 4))
    (x_train, y_train), (x_val, y_val) = collect(train), collect(validation)
    assert info.task == "classification" and info.class_names == ("cat", "dog", "owl")
    assert info.image_size == (6, 4) and x_train.shape == (14, 6, 4, 3) and x_val.shape == (1, 6, 4, 3)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32
    # Every image is one flat grey: its label's colour, scaled to [0, 1].
    for x, y in ((x_train, y_train), (x_val, y_val)):
        expected = np.array(list(COLOURS.values()))[y] / 255.0
        np.testing.assert_allclose(x, np.broadcast_to(expected[:, None, None, None], x.shape), atol=1e-6)
    assert sorted(np.bincount(np.concatenate([y_train, y_val])).tolist()) == [5, 5, 5]
    with pytest.raises(ValueError, match="has no 'test' split"):
        load_folder(classes_folder, "test")
    with pytest.raises(ValueError, match="has no 'segmentation' task. It supports: 'classification'"):
        load_folder(classes_folder, task="segmentation")
    with pytest.raises(ValueError, match="num_classes=4 but .* has 3 class sub-folders"):
        load_folder(classes_folder, num_classes=4)
    one_hot, _ = load_folder(classes_folder, "validation", image_size=(6, 4), one_hot=True)
    np.testing.assert_array_equal(collect(one_hot)[1], np.eye(3, dtype="float32")[y_val])


def test_mask_folders_exact_and_num_classes_over_all_splits(masks_folder):
    dataset, info = load_dataset(masks_folder, "validation", image_size=(HEIGHT, WIDTH))
    images, masks = collect(dataset)
    assert info.task == "segmentation" and info.num_classes == 3  # inferred from train/ too
    assert info.class_names == ("0", "1", "2")
    assert images.shape == (2, HEIGHT, WIDTH, 3) and masks.shape == (2, HEIGHT, WIDTH)
    assert masks.dtype == np.int32
    for i in range(2):
        image, mask = segmentation_pair(i, num_classes=2)
        np.testing.assert_allclose(images[i], image / 255.0, atol=1e-6)
        np.testing.assert_array_equal(masks[i], mask)
    small, _ = load_folder(masks_folder, "train", image_size=5, num_images=3, shuffle=False)
    images, masks = collect(small)
    assert images.shape == (3, 5, 5, 3) and set(np.unique(masks)) <= {0, 1, 2}
    with pytest.raises(ValueError, match="has no 'test' sub-folder. Its splits: 'train', 'validation'"):
        load_folder(masks_folder, "test")
    with pytest.raises(ValueError, match="Mask values must be < num_classes=2, but masks in .*train.* reach 2"):
        load_folder(masks_folder, num_classes=2)


def test_random_split_of_mask_folder(tmp_path):
    write_segmentation(tmp_path, 10, extension=".jpg")
    train, info = load_dataset(tmp_path, image_size=8, batch_size=20, seed=3)
    validation, _ = load_folder(tmp_path, "validation", image_size=8, seed=3)
    (images, masks), (val_images, _) = collect(train), collect(validation)
    assert images.shape == (9, 8, 8, 3) and val_images.shape == (1, 8, 8, 3)
    assert not any(np.allclose(val_images[0], image) for image in images)
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert set(np.unique(masks)) <= {0, 1, 2} and info.num_classes == 3


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
        ("names", "3 images without a mask: 'img0', 'img1', 'img2'; 3 masks without an image: 'other0'"),
        ("size", "img1.png' is 11x12 \\(width x height\\) but its image .*img1.png' is 10x12"),
        ("mode", "img2.png' has PIL mode 'RGB': masks must be 8-bit grayscale"),
    ],
)
def test_bad_mask_folders(tmp_path, case, match):
    with pytest.raises(ValueError, match=match):
        load_folder(bad_folder(tmp_path, case))
