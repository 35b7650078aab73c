"""Each batch of a dataset split between the processes of a data-parallel
run: every process reads the same batches and keeps its own part of each."""

import keras

from keras_cvlec.data.pydataset import ArrayDataset
from keras_cvlec.utils.validation import check_positive_int

__all__ = ["shard_batches"]


def _rows(size, num_shards, index, multiple):
    """The rows `[start, stop)` that shard `index` keeps of a batch of `size`
    rows cut to a multiple of `multiple`."""
    step = (size - size % multiple) // num_shards
    return index * step, (index + 1) * step


class _ShardedArrayDataset(keras.utils.PyDataset):
    """An `ArrayDataset` with each batch cut to its shard, less a last batch
    of fewer than `multiple` rows."""

    def __init__(self, dataset, num_shards, index, multiple):
        super().__init__()
        self.dataset = dataset
        self._part = (num_shards, index, multiple)
        last = len(dataset.images) - (len(dataset) - 1) * dataset.batch_size
        self._length = len(dataset) - (0 < len(dataset) and last < multiple)

    def __len__(self):
        return self._length

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range [0, {len(self)}).")
        images, targets = self.dataset[index]
        start, stop = _rows(len(images), *self._part)
        return images[start:stop], targets[start:stop]

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


def shard_batches(dataset, num_shards, index, *, multiple=None):
    """Shard `index` of every batch of `dataset`.

    Each batch is cut to a multiple of `multiple` rows (a batch of fewer is
    left out) and split into `num_shards` equal parts of consecutive rows, of
    which shard `index` is kept: the batches of all shards together are
    those of `dataset`, less the cut rows.

    Args:
        dataset: an `ArrayDataset` or a batched `tf.data.Dataset` of
            `(images, targets)`.
        num_shards: int >= 1, the processes.
        index: this process's shard, `0` to `num_shards - 1`.
        multiple: None (`num_shards`) or a multiple of `num_shards`: the
            devices over which each batch is split.

    Returns:
        A dataset of the same kind (a `keras.utils.PyDataset` for an
        `ArrayDataset`).

    Example:

    >>> x, y = np.zeros((9, 4, 4, 3), "float32"), np.arange(9)
    >>> shard = shard_batches(ArrayDataset(x, y, batch_size=4), 2, 1)
    >>> len(shard), shard[0][1]  # batches of 4, 4 and 1: the last is left out
    (2, array([2, 3]))
    """
    num_shards = check_positive_int("num_shards", num_shards)
    index = check_positive_int("index", index, minimum=0)
    multiple = num_shards if multiple is None else check_positive_int("multiple", multiple)
    if index >= num_shards or multiple % num_shards:
        raise ValueError(
            f"`index` must be in [0, {num_shards - 1}] and `multiple` a multiple of "
            f"num_shards={num_shards}. Received: index={index}, multiple={multiple}"
        )
    if isinstance(dataset, ArrayDataset):
        return _ShardedArrayDataset(dataset, num_shards, index, multiple)
    import tensorflow as tf

    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            f"`dataset` must be an ArrayDataset or a tf.data.Dataset. Received: "
            f"dataset of type {type(dataset).__name__}"
        )

    def keep(images, targets):
        start, stop = _rows(tf.shape(images)[0], num_shards, index, multiple)
        return images[start:stop], targets[start:stop]

    return dataset.map(keep).filter(lambda images, targets: tf.shape(images)[0] > 0)
