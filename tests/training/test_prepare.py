"""`prepare_training` without a run folder, as the examples use it, and the
steps per epoch counted without running the data pipeline."""

import numpy as np
import pytest

from keras_cvlec.data import ArrayDataset, DatasetInfo
from keras_cvlec.training import TrainingRun, prepare_training, run_training
from keras_cvlec.training.distribution import Distribution
from keras_cvlec.training.run import _num_batches

UNET = {"filters": 4, "depth": 2}


def _info(num_examples):
    return DatasetInfo(
        "counted", "classification", 2, ("a", "b"), (4, 4), num_examples=num_examples
    )


def test_steps_are_counted_without_decoding_or_augmenting():
    """A split of unknown cardinality whose every element would be counted
    by its decoding map: the count comes from the data set's size."""
    tf = pytest.importorskip("tensorflow")
    decoded = []

    def decode(index):
        decoded.append(index)
        return np.zeros((4, 4, 3), "float32"), np.int32(0)

    def decode_in_graph(index):
        images, labels = tf.numpy_function(decode, [index], ("float32", "int32"))
        return images, labels

    examples = tf.data.Dataset.range(20).filter(lambda index: index >= 0)  # unknown size
    dataset = examples.map(decode_in_graph).batch(8)
    with pytest.raises(TypeError):
        len(dataset)  # so the count cannot come from the dataset's cardinality
    assert _num_batches(dataset, _info(20), 8, None) == 3
    assert _num_batches(dataset, _info(None), 8, 12) == 2  # num_images bounds it
    with pytest.raises(ValueError, match="'counted' does not tell its size.*num_images"):
        _num_batches(dataset, _info(None), 8, None)
    assert decoded == []

    # An ArrayDataset (shapes) counts by its length; its transform runs per batch.
    transformed = []

    def augment(images, targets):
        transformed.append(len(images))
        return images, targets

    arrays = ArrayDataset(
        np.zeros((20, 4, 4, 3), "float32"), np.zeros(20, "int32"), batch_size=8, transform=augment
    )
    assert _num_batches(arrays, _info(None), 8, None) == 3
    assert transformed == []


def test_steps_on_several_devices_are_the_batches_fit_gets():
    """A last batch of fewer examples than devices is left out of what `fit`
    gets (`Distribution.distribute_data`), so the schedule does not count
    it; one of at least as many is counted."""
    tf = pytest.importorskip("tensorflow")
    for examples, devices, batches in [(17, 1, 3), (17, 2, 2), (18, 2, 3), (19, 4, 2)]:
        images, targets = np.zeros((examples, 4, 4, 3), "float32"), np.zeros(examples, "int32")
        arrays = ArrayDataset(images, targets, batch_size=8)
        batched = tf.data.Dataset.from_tensor_slices((images, targets)).batch(8)
        unknown = batched.filter(lambda images, targets: True)  # only info tells the size
        assert _num_batches(arrays, _info(None), 8, None, devices) == batches
        assert _num_batches(batched, _info(examples), 8, None, devices) == batches
        assert _num_batches(unknown, _info(examples), 8, None, devices) == batches
        assert _num_batches(unknown, _info(None), 8, examples, devices) == batches
        distribution = Distribution("data-parallel", num_devices=devices)
        assert len(distribution.distribute_data(arrays)) == batches
        assert len(list(distribution.distribute_data(batched))) == batches


def test_a_run_without_a_folder_is_compiled_for_its_output_activation():
    run = prepare_training(
        "unet",
        "shapes",
        epochs=1,
        batch_size=8,
        image_size=16,
        num_images=8,
        model_options={**UNET, "final_activation": "softmax"},
    )
    assert isinstance(run, TrainingRun) and run.output_dir is None
    assert run.task == "segmentation" and run.epochs == 1
    assert run.from_logits is False and run.model.loss.from_logits is False
    assert run.model.optimizer.built  # the plan's optimizer, built for the model
    assert run.plan.steps_per_epoch == 1 and run.plan.warmup_steps == 0
    # An image of the data set's size, channels-last.
    images, masks = run.data["validation"][0]
    assert run.model.predict(images, verbose=0).shape == (8, 16, 16, 4)
    np.testing.assert_allclose(run.model.predict(images, verbose=0).sum(-1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="run_training.*output_dir=None"):
        run_training(run, verbose=0)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(resume=True), "resume.*need a run folder.*output_dir=None"),
        (dict(backup_every=5), "backup_every.*need a run folder.*backup_every=5"),
        (
            dict(model_options={**UNET, "data_format": "channels_first"}),
            "cannot set data_format='channels_first'.*channels-last",
        ),
        (dict(image_size=(16, 16, 3)), "image_size.*\\(height, width\\).*\\(16, 16, 3\\)"),
        (dict(data_dir="tfds"), "data_dir.*tensorflow-datasets names only"),
    ],
)
def test_bad_arguments_without_a_run_folder(arguments, message):
    arguments = {"epochs": 1, "num_images": 8, "model_options": UNET, **arguments}
    with pytest.raises(ValueError, match=message):
        prepare_training("unet", "shapes", **arguments)


def test_the_old_tasks_constant_of_objectives_warns_and_still_works():
    from keras_cvlec import tasks
    from keras_cvlec.training import objectives

    with pytest.warns(DeprecationWarning, match="keras_cvlec.tasks.TRAINABLE_TASKS"):
        assert objectives.TASKS == tasks.TRAINABLE_TASKS == ("classification", "segmentation")
