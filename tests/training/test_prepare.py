"""`prepare_training` without a run folder, as the examples use it, and the
steps per epoch counted without running the data pipeline."""

import numpy as np
import pytest

from keras_cvlec.data import ArrayDataset, DatasetInfo
from keras_cvlec.training import TrainingRun, prepare_training, run_training
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
