"""What a run needs beyond Keras's callbacks: checkpoints written atomically,
a backup at every epoch end, the restored epoch's checkpoints written when a
run resumes, a CSV log cut back to the epoch the backup restarts from, and
an error when the loss stops being finite."""

import csv
import json
import os
import re

import keras

from keras_cvlec.data import set_epoch
from keras_cvlec.training.files import atomic_write_text, save_model_atomically

__all__ = [
    "EPOCH_END",
    "AtomicModelCheckpoint",
    "EpochOrder",
    "RestoredCheckpoints",
    "ResumableBackup",
    "StopOnNonFiniteLoss",
    "TrainingDivergedError",
    "backup_progress",
    "read_log",
    "remove_partial_checkpoints",
    "truncate_log",
]


class EpochOrder(keras.callbacks.Callback):
    """Orders each epoch of a training split as its pass `epoch`
    (`keras_cvlec.data.set_epoch`) when the epoch begins.

    A shuffled split moves on one pass at every pass Keras starts, and
    `fit` starts some before the first epoch: on every backend it reads a
    batch of a PyDataset and ends its epoch, and under a `tf.distribute`
    strategy it reads a batch of a `tf.data` split to build the model. The
    order of an epoch then depended on the backend and the distribution,
    and a resumed run had to count them.

    Args:
        dataset: an `ArrayDataset`, or a `tf.data.Dataset` from a keras_cvlec
            loader.
    """

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        set_epoch(self.dataset, epoch)


# The batch a backup at an epoch's end records; Keras records 0, as after the
# first batch of an epoch.
EPOCH_END = -1


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that, with a step `save_freq`, also
    backs up at every epoch end, records the epoch in progress, and marks a
    backup at an epoch's end with batch `EPOCH_END`.

    Keras's step backups record the epoch last ended, updated only at epoch
    ends: without these changes a run killed early in an epoch repeats the
    epoch before it, and after a restore backups record epoch 0. A resumed
    run restarts the backup's epoch at its first batch.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = EPOCH_END
        self._save_model()


class RestoredCheckpoints(keras.callbacks.Callback):
    """Writes the restored model to checkpoint files when a resumed run
    begins; goes after the `ResumableBackup` that restores it.

    A run killed after an epoch's backup but before its checkpoints left
    them an epoch behind the backup, and the resumed run starts after that
    epoch: nothing else would write them.

    Args:
        paths: the `.keras` files to write.
        ema: whether the checkpoints hold the optimizer's moving averages
            of the weights (as under `keras.callbacks.SwapEMAWeights`).
    """

    def __init__(self, paths, ema=False):
        super().__init__()
        self.paths = list(paths)
        self.ema = ema

    def on_train_begin(self, logs=None):
        swap = keras.callbacks.SwapEMAWeights() if self.ema else None
        if swap is not None:
            swap.set_model(self.model)
            swap.on_test_begin()  # the averages into the model
        try:
            for path in self.paths:
                save_model_atomically(self.model, path)
        finally:
            if swap is not None:
                swap.on_test_end()


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint` that writes each file under a
    temporary name and then renames it: a run killed while saving leaves the
    previous checkpoint or the complete new one, never a truncated file."""

    def _get_file_path(self, epoch, batch, logs):
        self._final_path = super()._get_file_path(epoch, batch, logs)
        root, extension = os.path.splitext(self._final_path)
        return f"{root}.tmp{os.getpid()}{extension}"

    def _save_model(self, epoch, batch, logs):
        super()._save_model(epoch, batch, logs)
        temporary = self._get_file_path(epoch, batch, logs)
        if os.path.exists(temporary):
            os.replace(temporary, self._final_path)


def remove_partial_checkpoints(folder):
    """Removes the temporary files of `AtomicModelCheckpoint`s that a killed
    run left in `folder`; returns their names."""
    names = [name for name in os.listdir(folder) if re.fullmatch(r".+\.tmp\d+\.keras", name)]
    for name in names:
        os.remove(os.path.join(folder, name))
    return names


class TrainingDivergedError(RuntimeError):
    """Training stopped because the loss became NaN or infinite."""


class StopOnNonFiniteLoss(keras.callbacks.TerminateOnNaN):
    """`keras.callbacks.TerminateOnNaN` that raises `TrainingDivergedError`
    naming the epoch and batch, at once: no later callback saves the
    non-finite weights (the backup keeps the last finished epoch)."""

    def __init__(self):
        super().__init__(raise_error=True)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        try:
            super().on_batch_end(batch, logs)
        except RuntimeError:
            raise TrainingDivergedError(
                f"Training diverged: the loss became {logs['loss']} at epoch "
                f"{self._epoch + 1}, batch {batch + 1}. No model of that epoch was saved. "
                "Labels outside [0, num_classes) (other than the void class) give a NaN "
                "loss too; otherwise try a lower learning rate (--learning-rate) or "
                "gradient clipping (--recipe-options clipnorm=1.0) in a new run folder."
            ) from None


def backup_progress(backup_dir):
    """`(epoch, batch)` of the `ResumableBackup` in `backup_dir`: the epoch a
    resumed run restarts from, and the last batch of it that the backup had
    trained (`EPOCH_END` for a backup at an epoch's end; `(0, EPOCH_END)`
    when there is no backup)."""
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.exists(path):
        return 0, EPOCH_END
    with open(path) as file:
        metadata = json.load(file)
    return int(metadata["epoch"]), int(metadata.get("batch", EPOCH_END))


def _complete_lines(path):
    """The lines of `path` that end with a newline: a run killed while
    writing leaves an incomplete last line."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as file:
        return [line for line in file.read().splitlines(keepends=True) if line.endswith("\n")]


def read_log(path):
    """The complete rows of a `CSVLogger` file as dicts of floats (`epoch`
    an int); `[]` when there is no file."""
    rows = []
    for row in csv.DictReader(_complete_lines(path)):
        rows.append(
            {key: int(value) if key == "epoch" else float(value) for key, value in row.items()}
        )
    return rows


def truncate_log(path, epochs):
    """Keeps the rows of epochs `< epochs` in a `CSVLogger` file.

    A run killed after logging an epoch but before backing it up repeats
    that epoch when resumed; without this its row would appear twice.
    """
    lines = _complete_lines(path)
    if not lines:
        return
    header, rows = lines[0], lines[1:]
    kept = [line for line in rows if int(line.split(",", 1)[0]) < epochs]
    atomic_write_text(path, "".join([header, *kept]))
