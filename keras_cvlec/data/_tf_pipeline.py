"""The common end of the `tf.data` loaders (tensorflow-datasets and
folders): cache, shuffle, batch, scale, augment, prefetch."""

SHUFFLE_BUFFER = 4096

# The attribute of a loader's `tf.data.Dataset` that holds its epoch variable.
_EPOCH = "_keras_cvlec_epoch"


def epoch_variable(dataset):
    """The `tf.Variable` that orders the epochs of a loader's
    `tf.data.Dataset` (see `batch_tf_dataset`), or None for another
    dataset."""
    return getattr(dataset, _EPOCH, None)


def keep_epoch_variable(dataset, source):
    """`dataset`, made from `source`, with the epoch variable of `source`."""
    setattr(dataset, _EPOCH, epoch_variable(source))
    return dataset


def _shuffled_by_epoch(dataset, seed, epoch):
    """`dataset` shuffled in an order drawn from `seed` and the epoch: the
    value of the variable `epoch` when an iterator starts reading, which
    moves it on by one."""
    import tensorflow as tf

    specs = tf.nest.flatten(dataset.element_spec)

    def shuffled(_):
        # The op takes the seeds as they are: `Dataset.shuffle` would mix in
        # the global seed (and fails on a tensor seed when that is 0). The
        # second seed is epoch + 1, as (0, 0) draws random seeds.
        variant = tf.raw_ops.ShuffleDataset(
            input_dataset=tf.data.experimental.to_variant(dataset),
            buffer_size=SHUFFLE_BUFFER,
            seed=seed % 2**63,
            seed2=epoch.assign_add(1),
            reshuffle_each_iteration=False,
            output_types=[spec.dtype for spec in specs],
            output_shapes=[spec.shape for spec in specs],
        )
        return tf.data.experimental.from_variant(variant, dataset.element_spec)

    # `flat_map` builds the shuffle when an iterator starts reading, not when
    # it is made: on TensorFlow and torch `fit` also makes an iterator at the
    # end of every epoch that it drops unread.
    result = tf.data.Dataset.range(1).flat_map(shuffled)
    cardinality = int(dataset.cardinality())
    if cardinality >= 0:  # known to `dataset`, lost by `flat_map`
        result = result.apply(tf.data.experimental.assert_cardinality(cardinality))
    return result


def batch_tf_dataset(dataset, batch_size, *, shuffle, seed, augment):
    """Batches a dataset of decoded examples.

    Args:
        dataset: a `tf.data.Dataset` of `(uint8 image (H, W, 3), int32
            target)` examples, already resized.
        batch_size: examples per batch.
        shuffle: reshuffle every epoch (a buffer of `SHUFFLE_BUFFER`
            examples). With a seed, pass `e` over the dataset is ordered by
            `(seed, e)`; `keras_cvlec.data.set_epoch` sets the next pass's
            `e` (a resumed run takes the order of a run not stopped).
        seed: None (unseeded) or an int, the seed of the shuffling.
        augment: None or a callable `(images, targets) -> (images, targets)`
            applied to every batch.

    Returns:
        The dataset cached (uint8, so it takes a quarter of float32's
        memory), shuffled, batched, scaled to float32 `[0, 1]`, augmented
        and prefetched, with its epoch variable (`epoch_variable`).
    """
    import tensorflow as tf

    # On the CPU, where `tf.data` reads it.
    with tf.device("CPU:0"):
        epoch = tf.Variable(0, dtype="int64", trainable=False)
    dataset = dataset.cache()
    if shuffle and seed is not None:
        dataset = _shuffled_by_epoch(dataset, seed, epoch)
    elif shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(
        lambda images, targets: (tf.cast(images, "float32") / 255.0, targets),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if augment is not None:
        dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    setattr(dataset, _EPOCH, epoch)
    return dataset
