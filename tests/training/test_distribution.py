"""Data-parallel training (`train(..., distribution=...)`, `--distribute`):
argument checks in this process, two virtual CPU devices in a fresh one
(they must be set up before the backend starts), and two processes on
127.0.0.1."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from keras_cvlec import cli
from keras_cvlec.data import ArrayDataset, shard_batches
from keras_cvlec.training import TrainingRun, prepare_training, train
from keras_cvlec.training.callbacks import EPOCH_END, EpochOrder, backup_progress, read_log
from keras_cvlec.training.distribution import (
    check_distribution,
    check_processes,
    resolve_distribution,
)
from keras_cvlec.training.files import read_json
from keras_cvlec.training.run import _in_folder

SCRIPT = os.path.join(os.path.dirname(__file__), "distributed_run.py")
MULTIPROCESS_SCRIPT = os.path.join(os.path.dirname(__file__), "multiprocess_run.py")
RUN_FOLDER = [
    "best.keras", "curves.png", "last.keras", "log.csv", "logs", "metrics.json",
    "per_class.png", "predictions.png", "run.json",
]  # fmt: skip
TINY = dict(
    epochs=1,
    batch_size=8,
    image_size=16,
    num_images=16,
    model_options={"filters": 4, "depth": 1},
    verbose=0,
)


@pytest.mark.backend_independent
@pytest.mark.parametrize("value", ["mirrored", "", 2, True])
def test_a_bad_distribution_is_refused(value):
    with pytest.raises(
        ValueError,
        match=r"Unknown `distribution`: .*Allowed values: .none., .auto., .data-parallel.",
    ):
        check_distribution(value)


@pytest.mark.backend_independent
def test_none_is_one_device():
    assert check_distribution(None) == "none"
    assert resolve_distribution(None).to_json() == {
        "kind": "none",
        "num_devices": 1,
        "num_processes": 1,
    }


def test_auto_on_one_device_is_none_and_recorded(tmp_path):
    """This process sees one CPU device: `auto` trains on it, and run.json
    says so."""
    assert resolve_distribution("auto").kind == "none"
    train("unet", "shapes", output_dir=str(tmp_path / "run"), distribution="auto", **TINY)
    run = read_json(str(tmp_path / "run" / "run.json"))
    assert run["args"]["distribution"] == "auto"
    assert run["distribution"] == {"kind": "none", "num_devices": 1, "num_processes": 1}


def test_the_cli_passes_distribute(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--model", "unet", "--dataset", "shapes", "--output", "x",
                  "--distribute", "mirrored"])  # fmt: skip
    assert "--distribute: invalid choice: 'mirrored'" in capsys.readouterr().err
    output = str(tmp_path / "run")
    cli.main(
        ["train", "--model", "unet", "--dataset", "shapes", "--output", output, "--epochs", "1",
         "--batch-size", "8", "--image-size", "16", "--num-images", "16", "--verbose", "0",
         "--model-options", "filters=4", "depth=1", "--distribute", "auto"]
    )  # fmt: skip
    assert read_json(os.path.join(output, "run.json"))["args"]["distribution"] == "auto"


def test_the_cli_passes_the_processes(tmp_path):
    """--job-addresses, --num-processes and --process-id reach the checks,
    which refuse them before anything is written or connects."""
    command = ["train", "--model", "unet", "--dataset", "shapes", "--output",
               str(tmp_path / "run"), "--job-addresses", "127.0.0.1:1,127.0.0.1:2"]  # fmt: skip
    with pytest.raises(SystemExit, match=r"Several processes train data-parallel"):
        cli.main([*command, "--num-processes", "2", "--process-id", "1"])
    message = r"`process_id` must be in \[0, 1\] with num_processes=2. Received: process_id=5"
    with pytest.raises(SystemExit, match=message):
        cli.main([*command, "--distribute", "auto", "--num-processes", "2", "--process-id", "5"])
    if keras.backend.backend() == "torch":
        with pytest.raises(SystemExit, match=r"needs the jax or tensorflow backend.*processes=2"):
            cli.main(
                [*command, "--distribute", "auto", "--num-processes", "2", "--process-id", "1"]
            )
    assert not os.path.exists(tmp_path / "run")


def test_data_parallel_on_two_devices(tmp_path):
    """JAX and TensorFlow: two SGD steps of global batch 8 split over 2
    devices give the weights of one device on batch 8, and `train` on 2
    devices (17 images a split: a last batch of 1, which is left out)
    writes a complete run folder that records them, its learning-rate
    schedule 2 steps an epoch. PyTorch: refused before
    anything is written, naming the backends that can."""
    output = str(tmp_path / "run")
    if keras.backend.backend() == "torch":
        with pytest.raises(ValueError, match=r"jax or tensorflow backend.*'data-parallel'"):
            train("unet", "shapes", output_dir=output, distribution="data-parallel", **TINY)
        assert not os.path.exists(output)
        return
    result = subprocess.run(
        [sys.executable, SCRIPT, output],
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    assert numbers["change"] > 1e-3  # the steps moved the weights
    assert numbers["difference"] < 1e-5
    assert "must be a multiple of 2. Received: batch_size=7" in numbers["uneven_batch"]
    run = read_json(os.path.join(output, "run.json"))
    assert run["distribution"] == {"kind": "data-parallel", "num_devices": 2, "num_processes": 1}
    # The schedule counts the 2 batches `fit` gets, not the left-out third.
    assert run["resolved_recipe"]["steps_per_epoch"] == run["resolved_recipe"]["total_steps"] == 2
    assert sorted(os.listdir(output)) == RUN_FOLDER
    assert len(read_json(os.path.join(output, "metrics.json"))["per_class"]["test"]) > 0


@pytest.mark.backend_independent
@pytest.mark.parametrize(
    "processes, error, message",
    [
        (dict(num_processes=2, process_id=2, job_addresses="a:1,b:2"), ValueError,
         r"`process_id` must be in \[0, 1\] with num_processes=2. Received: process_id=2"),
        (dict(num_processes=2, process_id=-1, job_addresses="a:1"), ValueError,
         r"`process_id` must be >= 0. Received: process_id=-1"),
        (dict(num_processes=2), ValueError, r"`process_id` is needed with num_processes=2"),
        (dict(num_processes="2", process_id=0), TypeError, r"`num_processes` must be an int"),
        (dict(num_processes=2, process_id=0), ValueError,
         r"`job_addresses` is needed with num_processes=2.*Received: job_addresses=None"),
        (dict(num_processes=2, process_id=0, job_addresses="a:1,b"), ValueError,
         r"'host:port' addresses separated by commas. Received: job_addresses='a:1,b'"),
        (dict(num_processes=2, process_id=0, job_addresses="a:1,b:2,c:3"), ValueError,
         r"`job_addresses` must name .*2 address\(es\) with num_processes=2"),
    ],
)  # fmt: skip
def test_bad_processes_are_refused(processes, error, message):
    with pytest.raises(error, match=message):
        check_processes(**processes)


def test_the_processes_default_to_the_environment(monkeypatch):
    """KERAS_DISTRIBUTION_* (as `keras.distribution.initialize` reads them)
    off TensorFlow, TF_CONFIG on it (chief first); arguments win."""
    for name in ("TF_CONFIG", "KERAS_DISTRIBUTION_JOB_ADDRESSES"):
        monkeypatch.delenv(name, raising=False)
    assert check_processes() == ([], 1, 0)
    # Checked for one device too.
    with pytest.raises(ValueError, match=r"`process_id` must be in \[0, 0\] with num_processes=1"):
        resolve_distribution(None, process_id=1)
    several = r"Several processes train data-parallel.*environment.*num_processes=3"
    if keras.backend.backend() == "tensorflow":
        cluster = {"chief": ["a:1"], "worker": ["b:2", "c:3"]}
        task = {"type": "worker", "index": 1}
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
        assert check_processes() == (["a:1", "b:2", "c:3"], 3, 2)
        with pytest.raises(ValueError, match=several):
            resolve_distribution(None)
        assert check_processes(process_id=0) == (["a:1", "b:2", "c:3"], 3, 0)
        task = {"type": "ps", "index": 0}
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
        with pytest.raises(ValueError, match="TF_CONFIG's task must be a chief or worker task"):
            check_processes()
    else:
        monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "a:1")
        monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "3")
        monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "2")
        assert check_processes() == (["a:1"], 3, 2)
        with pytest.raises(ValueError, match=several):
            resolve_distribution(None)
        assert check_processes(job_addresses="d:4", process_id=0) == (["d:4"], 3, 0)
        monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "first")
        with pytest.raises(ValueError, match=r"KERAS_DISTRIBUTION_PROCESS_ID must be an int"):
            check_processes()


def test_several_processes_need_a_seed_and_data_parallel(tmp_path):
    """Refused before any process connects or writes."""
    output = str(tmp_path / "run")
    processes = dict(job_addresses="127.0.0.1:1,127.0.0.1:2", num_processes=2, process_id=1)
    with pytest.raises(ValueError, match=r"`seed` must be an int when several processes train"):
        train("unet", "shapes", output_dir=output, distribution="auto", seed=None,
              **processes, **TINY)  # fmt: skip
    with pytest.raises(ValueError, match=r"Several processes train data-parallel: pass distri"):
        train("unet", "shapes", output_dir=output, distribution="none", **processes, **TINY)
    assert not os.path.exists(output)


@pytest.mark.backend_independent
def test_shard_batches_splits_every_batch_between_processes():
    """Two shards of batches 8, 8, 1 (devices: 4): the first two batches
    split in halves of consecutive rows, the last (fewer rows than devices)
    left out; the same for a tf.data.Dataset."""
    import tensorflow as tf

    images = np.arange(17 * 2, dtype="float32").reshape(17, 2, 1, 1)
    targets = np.arange(17)
    data = ArrayDataset(images, targets, batch_size=8, shuffle=True, seed=3)
    shards = [shard_batches(data, 2, index, multiple=4) for index in (0, 1)]
    assert [len(shard) for shard in shards] == [2, 2]
    for batch in range(2):
        parts = [shard[batch] for shard in shards]
        assert [len(part[1]) for part in parts] == [4, 4]
        np.testing.assert_array_equal(np.concatenate([part[0] for part in parts]), data[batch][0])
        np.testing.assert_array_equal(np.concatenate([part[1] for part in parts]), data[batch][1])
    # A last batch of 3 rows on 2 devices keeps 2, one a process.
    uneven = shard_batches(ArrayDataset(images[:11], targets[:11], batch_size=8), 2, 1, multiple=2)
    assert [batch[1].tolist() for batch in (uneven[0], uneven[1])] == [[4, 5, 6, 7], [9]]
    batched = tf.data.Dataset.from_tensor_slices((images, targets)).batch(8)
    assert [
        targets.numpy().tolist() for _, targets in shard_batches(batched, 2, 1, multiple=4)
    ] == [[4, 5, 6, 7], [12, 13, 14, 15]]
    with pytest.raises(ValueError, match=r"`index` must be in \[0, 1\] and `multiple` a mult"):
        shard_batches(data, 2, 0, multiple=3)
    with pytest.raises(TypeError, match=r"`dataset` must be an ArrayDataset or a tf.data"):
        shard_batches([images], 2, 0)


@pytest.mark.backend_independent
def test_a_resumed_run_gives_the_other_processes_its_state(tmp_path):
    """The processes other than the chief write into a folder of their own,
    which starts with what a resumed run reads of the chief's."""
    chief = tmp_path / "run"
    (chief / "backup").mkdir(parents=True)
    (chief / "logs").mkdir()
    for name in ("run.json", "log.csv", "best.keras", "last.keras", "backup/weights.h5"):
        (chief / name).write_text(name)
    run = TrainingRun("unet", "segmentation", {}, None, None, None, {}, True, str(chief), True)
    other = tmp_path / "other"
    other.mkdir()
    assert _in_folder(run, str(other)).output_dir == str(other)
    assert sorted(os.listdir(other)) == [
        "backup",
        "best.keras",
        "last.keras",
        "log.csv",
        "run.json",
    ]
    assert (other / "backup" / "weights.h5").read_text() == "backup/weights.h5"
    assert run.output_dir == str(chief)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _weights_of_one_process(arguments):
    """Initial and trained weights of the run `arguments` on one device,
    each batch cut to a multiple of 2 (as on 2 devices)."""
    run = prepare_training(**{key: value for key, value in arguments.items() if key != "verbose"})
    initial = [keras.ops.convert_to_numpy(weight) for weight in run.model.weights]
    batches = shard_batches(run.data["train"], 1, 0, multiple=2)
    run.model.fit(  # as `train`
        batches,
        epochs=run.epochs,
        callbacks=[EpochOrder(run.data["train"])],
        shuffle=False,
        verbose=0,
    )
    return initial, [keras.ops.convert_to_numpy(weight) for weight in run.model.weights]


def _saved_weights(path):
    model = keras.saving.load_model(path, compile=False)
    return [keras.ops.convert_to_numpy(weight) for weight in model.weights]


def _largest_difference(weights, others):
    return max(float(abs(a - b).max()) for a, b in zip(weights, others))


def _image_folder(folder, count=32):
    """A folder data set of `count` random 16x16 images and masks: a
    `tf.data` split, reshuffled at every epoch by seed."""
    image = pytest.importorskip("PIL.Image")
    for name in ("images", "masks"):
        (folder / name).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, (16, 16, 3), dtype="uint8")
        image.fromarray(pixels).save(folder / "images" / f"{index}.png")
        mask = (pixels[..., 0] > 127).astype("uint8")
        image.fromarray(mask).save(folder / "masks" / f"{index}.png")
    return str(folder)


def _two_process_arguments(output, epochs, dataset):
    """`train` arguments of a tiny run of 2 processes whose steps are those
    of one process: no BatchNormalization (its statistics depend on the
    split) and no augmentation."""
    return {
        **{key: value for key, value in TINY.items() if key != "num_images"},
        "model_name": "unet",
        "dataset": dataset,
        "output_dir": output,
        "distribution": "data-parallel",
        "epochs": epochs,
        "verbose": 2,
        "recipe_options": {"augment": False},
        "model_options": {**TINY["model_options"], "norm": None},
    }


@contextlib.contextmanager
def _two_processes(arguments, folder, stop_file=None):
    """The 2 processes of the run `arguments` on 127.0.0.1, killed on exit.

    `folder` is their temporary folder and holds what they print (files, not
    pipes, which a process could fill and wait on); `stop_file`: see
    `MULTIPROCESS_SCRIPT`.
    """
    addresses = ",".join(f"127.0.0.1:{_free_port()}" for _ in range(2))
    environment = {
        **os.environ,
        "KERAS_BACKEND": keras.backend.backend(),
        "TMPDIR": str(folder),
        "TF_CPP_MIN_LOG_LEVEL": "1",  # TensorFlow's warnings, which the test reads
    }
    processes = []
    for index in (0, 1):
        command = [sys.executable, MULTIPROCESS_SCRIPT, addresses, "2", str(index)]
        command += [json.dumps(arguments)] + ([] if stop_file is None else [stop_file])
        with open(folder / f"{index}.out", "w") as out, open(folder / f"{index}.err", "w") as err:
            processes.append(subprocess.Popen(command, env=environment, stdout=out, stderr=err))
    try:
        yield processes
    finally:
        for process in processes:
            process.kill()
            process.wait()


def _printed_lines(processes, folder):
    """What each process printed, once all have exited 0; less the line
    Gloo (JAX's CPU collectives) prints on connecting."""
    for index, process in enumerate(processes):
        process.wait(timeout=240)
        assert process.returncode == 0, (folder / f"{index}.err").read_text()[-3000:]
    return [
        [
            line
            for line in (folder / f"{index}.out").read_text().splitlines()
            if not line.startswith("[Gloo]")
        ]
        for index in (0, 1)
    ]


def _wait_for_files(paths, processes, folder, timeout=240):
    """Waits until every path exists, failing if a process exits first."""
    deadline = time.monotonic() + timeout
    while not all(os.path.exists(path) for path in paths):
        for index, process in enumerate(processes):
            assert process.poll() is None, (folder / f"{index}.err").read_text()[-3000:]
        assert time.monotonic() < deadline, f"not all of {paths} after {timeout} s"
        time.sleep(0.05)


@pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="Keras has no multi-process fit on torch: "
    "test_two_processes_train_like_one_and_resume_after_a_kill tests that it is refused",
)
def test_two_processes_train_like_one_on_the_shapes_data(tmp_path):
    """The shapes data, a PyDataset (JAX takes each process's part of every
    batch; TensorFlow splits them): two processes train the weights of one
    process on the same global batch, and only the chief writes."""
    output = str(tmp_path / "run")
    arguments = {**_two_process_arguments(output, 1, "shapes"), "num_images": 16}
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    with _two_processes(arguments, temporary) as processes:
        initial, one_process = _weights_of_one_process(
            {**arguments, "output_dir": None, "distribution": "none"}
        )
        chief, other = _printed_lines(processes, temporary)
    assert chief[-2].startswith("2/2 ") and len(other) == 1
    with open(os.path.join(output, "log.csv")) as log:
        assert len(log.readlines()) == 2  # the header and epoch 0, once
    two_processes = _saved_weights(os.path.join(output, "last.keras"))
    assert _largest_difference(initial, one_process) > 1e-3
    assert _largest_difference(one_process, two_processes) < 1e-5


def test_two_processes_train_like_one_and_resume_after_a_kill(tmp_path):
    """JAX and TensorFlow: both processes of a 2-epoch run on 127.0.0.1
    killed (SIGKILL) once the first epoch has ended, then started again
    with resume=True, train the weights of one process's uninterrupted run
    on the same global batch, a folder's `tf.data` split taken in the
    order of one process at every epoch; only the chief writes the run folder
    (complete, each epoch logged once) and prints; the other's temporary
    folder is gone. PyTorch: refused before anything is written."""
    output = str(tmp_path / "run")
    arguments = _two_process_arguments(output, 2, _image_folder(tmp_path / "images"))
    if keras.backend.backend() == "torch":
        with pytest.raises(ValueError, match=r"jax or tensorflow backend.*num_processes=2"):
            train(**arguments, job_addresses="127.0.0.1:1", num_processes=2, process_id=0)
        assert not os.path.exists(output)
        return
    killed, resumed = tmp_path / "killed", tmp_path / "resumed"
    killed.mkdir()
    resumed.mkdir()
    stop_file = str(killed / "first_epoch_ended")
    with _two_processes(arguments, killed, stop_file) as processes:
        initial, one_process = _weights_of_one_process(
            {**arguments, "output_dir": None, "distribution": "none"}
        )
        _wait_for_files([f"{stop_file}.{index}" for index in (0, 1)], processes, killed)
    # Killed with the first epoch logged and backed up, the second not begun.
    assert [row["epoch"] for row in read_log(os.path.join(output, "log.csv"))] == [0]
    assert backup_progress(os.path.join(output, "backup")) == (1, EPOCH_END)
    with _two_processes({**arguments, "resume": True}, resumed) as processes:
        chief, other = _printed_lines(processes, resumed)
    # TF's auto-shard rewrite is not used: it drops the split's cardinality.
    assert "assert_cardinality" not in (resumed / "0.err").read_text()
    assert "recipe 'unet' resolved for this run" in chief[0] and chief[-2].startswith("4/4 ")
    assert "Epoch 2/2" in chief and "Epoch 1/2" not in chief  # continued from the backup
    assert len(other) == 1 and json.loads(other[0]) == json.loads(chief[-1])  # no progress
    assert [row["epoch"] for row in read_log(os.path.join(output, "log.csv"))] == [0, 1]
    assert sorted(os.listdir(output)) == RUN_FOLDER
    assert len(read_json(os.path.join(output, "metrics.json"))["per_class"]["validation"]) > 0
    run = read_json(os.path.join(output, "run.json"))
    assert run["distribution"] == {"kind": "data-parallel", "num_devices": 2, "num_processes": 2}
    assert not [name for name in os.listdir(resumed) if name.startswith("keras_cvlec")]
    two_processes = _saved_weights(os.path.join(output, "last.keras"))
    assert _largest_difference(initial, one_process) > 1e-3
    assert _largest_difference(one_process, two_processes) < 1e-5
