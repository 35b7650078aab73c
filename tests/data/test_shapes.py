import numpy as np
import pytest

from keras_cvlec.data import CLASS_NAMES, make_shapes, shapes_dataset


def test_arrays_shapes_ranges_and_labels():
    data = make_shapes(12, image_size=40, seed=3)
    images, masks, labels = data["images"], data["masks"], data["labels"]
    assert images.shape == (12, 40, 40, 3) and images.dtype == np.float32
    assert masks.shape == (12, 40, 40) and masks.dtype == np.int32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert set(np.unique(masks)) <= set(range(len(CLASS_NAMES)))
    for mask, label in zip(masks, labels):
        counts = [(mask == k).sum() for k in range(1, 4)]
        assert label == 1 + int(np.argmax(counts))
        assert (mask > 0).any()


def test_shapes_differ_from_their_surroundings():
    """Each shape is drawn in one flat colour: the image's spread inside a
    shape region is only the pixel noise, well below the whole image's."""
    data = make_shapes(8, image_size=64, seed=0, noise=0.0)
    for image, mask in zip(data["images"], data["masks"]):
        for kind in np.unique(mask[mask > 0]):
            region = image[mask == kind]
            # A region can hold several overlapping shapes of one class, each
            # flat: at most max_shapes distinct colours.
            assert len(np.unique(region.round(5), axis=0)) <= 3


def test_deterministic_and_splits_disjoint():
    a = shapes_dataset("train", num_images=6, image_size=32, seed=1)
    b = shapes_dataset("train", num_images=6, image_size=32, seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    other_seed = shapes_dataset("train", num_images=6, image_size=32, seed=2)
    assert not np.array_equal(a[0], other_seed[0])
    test = shapes_dataset("test", num_images=6, image_size=32, seed=1)
    for image in test[0]:
        assert not any(np.array_equal(image, train_image) for train_image in a[0])
    # The largest seed: each split draws from a NumPy seed derived from it.
    for split in ("train", "validation", "test"):
        assert shapes_dataset(split, num_images=1, image_size=16, seed=2**31 - 1)[0].shape == (
            1,
            16,
            16,
            3,
        )


def test_classification_task_one_shape_labels_start_at_zero():
    x, y = shapes_dataset("validation", num_images=20, image_size=32, task="classification")
    same, masks = shapes_dataset("validation", num_images=20, image_size=32, max_shapes=1)
    assert x.shape == (20, 32, 32, 3) and y.shape == (20,)
    np.testing.assert_array_equal(x, same)
    for label, mask in zip(y, masks):
        np.testing.assert_array_equal(np.unique(mask), [0, label + 1])
    assert set(np.unique(y)) == {0, 1, 2}
    # several shapes: the label is the class covering the most pixels
    _, y = shapes_dataset(
        "validation", num_images=20, image_size=32, task="classification", max_shapes=3
    )
    x, masks = shapes_dataset("validation", num_images=20, image_size=32)
    counts = np.stack([(masks == k).sum((1, 2)) for k in (1, 2, 3)], 1)
    np.testing.assert_array_equal(y, counts.argmax(1))
    assert (np.count_nonzero(counts, axis=1) > 1).any()


def test_default_split_sizes():
    x, _ = shapes_dataset("test", image_size=16)
    assert len(x) == 256


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: shapes_dataset("dev"), ValueError, "split.*'dev'.*'train'"),
        (lambda: shapes_dataset(task="detection"), ValueError, "task.*'detection'"),
        (lambda: make_shapes(0), ValueError, "num_images.*0"),
        (lambda: make_shapes(2, image_size=8), ValueError, "image_size.*16.*8"),
        (lambda: make_shapes(2, seed=1.5), TypeError, "seed"),
    ],
)
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
