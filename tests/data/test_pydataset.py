"""`ArrayDataset`: batches, per-epoch shuffling by seed (from any epoch),
and unseeded shuffling with seed=None."""

import numpy as np
import pytest

from keras_cvlec.data import ArrayDataset, load_dataset


def first_epochs(dataset, count=2):
    orders = []
    for _ in range(count):
        orders.append(np.concatenate([dataset[i][1] for i in range(len(dataset))]).tolist())
        dataset.on_epoch_end()
    return orders


def test_seeded_shuffle_repeats_and_unseeded_does_not():
    images, labels = np.zeros((20, 2, 2, 3), "float32"), np.arange(20)
    seeded = [
        first_epochs(ArrayDataset(images, labels, batch_size=6, shuffle=True, seed=3))
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1] and seeded[0][0] != seeded[0][1]
    assert sorted(seeded[0][0]) == list(range(20))
    # A resumed run starts at the order of the epoch it resumes at.
    resumed = ArrayDataset(images, labels, batch_size=6, shuffle=True, seed=3)
    resumed.set_epoch(1)
    assert first_epochs(resumed, 1) == seeded[0][1:]
    with pytest.raises(ValueError, match=r"`epoch` must be >= 0. Received: epoch=-1"):
        resumed.set_epoch(-1)
    # Two unseeded orders of 20 examples agree with probability 1/20!.
    unseeded = [
        first_epochs(ArrayDataset(images, labels, batch_size=6, shuffle=True, seed=None))
        for _ in range(2)
    ]
    assert unseeded[0][0] != unseeded[1][0] and unseeded[0] != seeded[0]
    assert sorted(unseeded[0][1]) == list(range(20))
    assert first_epochs(ArrayDataset(images, labels, batch_size=6, seed=None), 1) == [
        list(range(20))
    ]


def test_shapes_with_seed_none_shuffles_anew():
    def order():
        dataset, _ = load_dataset("shapes", image_size=16, batch_size=20, num_images=20, seed=None)
        return dataset[0][0][:, 0, 0, 0].tolist()

    first, second = order(), order()
    assert sorted(first) == sorted(second) and first != second


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(seed=1.5), TypeError, "`seed` must be None or an int"),
        (dict(batch_size=0), ValueError, "`batch_size` must be >= 1"),
        (dict(transform="flip"), TypeError, "`transform` must be None or a callable"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        ArrayDataset(np.zeros((2, 2, 2, 3)), np.zeros(2), **kwargs)
