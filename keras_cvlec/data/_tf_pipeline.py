"""The common end of the `tf.data` loaders (tensorflow-datasets and
folders): cache, shuffle, batch, scale, augment, prefetch."""

SHUFFLE_BUFFER = 4096


def batch_tf_dataset(dataset, batch_size, *, shuffle, seed, augment):
    """Batches a dataset of decoded examples.

    Args:
        dataset: a `tf.data.Dataset` of `(uint8 image (H, W, 3), int32
            target)` examples, already resized.
        batch_size: examples per batch.
        shuffle: reshuffle every epoch (a buffer of `SHUFFLE_BUFFER`
            examples, seeded by `seed`).
        seed: None (unseeded) or an int, the seed of the shuffling.
        augment: None or a callable `(images, targets) -> (images, targets)`
            applied to every batch.

    Returns:
        The dataset cached (uint8, so it takes a quarter of float32's
        memory), shuffled, batched, scaled to float32 `[0, 1]`, augmented
        and prefetched.
    """
    import tensorflow as tf

    dataset = dataset.cache()
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    dataset = dataset.map(
        lambda images, targets: (tf.cast(images, "float32") / 255.0, targets),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if augment is not None:
        dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
