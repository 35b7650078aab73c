"""A `keras.utils.PyDataset` over in-memory NumPy arrays.

Feeds `model.fit`, `evaluate` and `predict` on every backend without
TensorFlow: batches are sliced from the arrays, the order is reshuffled at
every epoch from `seed`, and an optional augmentation runs on each batch.
"""

import math

import keras
import numpy as np

from keras_cvlec.utils.validation import check_positive_int, check_seed

__all__ = ["ArrayDataset"]


class ArrayDataset(keras.utils.PyDataset):
    """Batches of `(images, targets)` from two NumPy arrays.

    Args:
        images: array `(N, H, W, C)`.
        targets: array with `N` rows (labels `(N,)` or masks `(N, H, W)`).
        batch_size: int >= 1; the last batch may be smaller.
        shuffle: reorder the examples at every epoch (epoch `e` uses the
            permutation drawn from `(seed, e)`, so runs are reproducible).
        seed: None (a new order in every run) or an int, the seed of the
            shuffling.
        transform: `None` or a callable `(images, targets) -> (images,
            targets)` applied to every batch (e.g. an augmentation from
            `keras_cvlec.data.augmentation`); its outputs are converted
            to NumPy.

    Example:

    >>> x, y = np.zeros((10, 16, 16, 3), "float32"), np.arange(10)
    >>> dataset = ArrayDataset(x, y, batch_size=4)
    >>> len(dataset), dataset[2][0].shape
    (3, (2, 16, 16, 3))
    """

    def __init__(self, images, targets, *, batch_size=32, shuffle=False, seed=0, transform=None):
        super().__init__()
        if len(images) != len(targets):
            raise ValueError(
                "`images` and `targets` must have the same number of rows. "
                f"Received: {len(images)} images and {len(targets)} targets."
            )
        if transform is not None and not callable(transform):
            raise TypeError(
                f"`transform` must be None or a callable. Received: transform={transform!r}"
            )
        self.images = images
        self.targets = targets
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.shuffle = bool(shuffle)
        self.seed = check_seed("seed", seed)
        self.transform = transform
        self.epoch = 0
        self._order = self._permutation()

    def _permutation(self):
        if not self.shuffle:
            return np.arange(len(self.images))
        entropy = None if self.seed is None else [self.seed, self.epoch]
        return np.random.default_rng(entropy).permutation(len(self.images))

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range [0, {len(self)}).")
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        images, targets = self.images[rows], self.targets[rows]
        if self.transform is not None:
            images, targets = self.transform(images, targets)
            images = keras.ops.convert_to_numpy(images)
            targets = keras.ops.convert_to_numpy(targets)
        return images, targets

    def set_epoch(self, epoch):
        """Orders the examples as in epoch `epoch` (0: the first), e.g. for
        a run that resumes there."""
        self.epoch = check_positive_int("epoch", epoch, minimum=0)
        self._order = self._permutation()

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)
