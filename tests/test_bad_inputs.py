"""A catalogue of bad input to the command line: each case exits with one
line that names what is wrong, before any data is loaded or model trained,
and leaves nothing behind. The library-level cases live beside their
modules (tests/data/test_folders.py, tests/training/test_run.py,
tests/test_losses.py, ...)."""

import os

import keras
import pytest

from keras_cvlec import cli

pytestmark = pytest.mark.backend_independent

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A user's files: a plain file, an empty folder, a truncated .keras
    file and a .keras model with two inputs."""
    root = tmp_path_factory.mktemp("user")
    (root / "notes.txt").write_text("mine")
    (root / "empty").mkdir()
    (root / "truncated.keras").write_bytes(b"PK\x03\x04" + bytes(20))
    first, second = keras.Input((4, 4, 3)), keras.Input((4, 4, 3))
    two_inputs = keras.Model([first, second], keras.layers.Add()([first, second]))
    two_inputs.save(root / "two_inputs.keras")
    return root


CASES = [
    # (command line, with {root} for the files' folder; words of the message)
    (
        ["train", "--model", "unet", "--dataset", "shapes", "--output", "{root}/notes.txt"],
        "output_dir.*notes.txt.*is a file",
    ),
    (
        ["train", "--model", "unet", "--dataset", "shapes", "--output", "{root}/notes.txt/run"],
        "output_dir.*cannot be written.*notes.txt.*not a writable folder",
    ),
    (
        [
            "train",
            "--model",
            "unet",
            "--dataset",
            "shapes",
            "--learning-rate",
            "inf",
            "--output",
            "{root}/run",
        ],
        "learning_rate.*finite.*inf",
    ),
    (
        ["train", "--model", "unet", "--dataset", "{root}/empty", "--output", "{root}/run"],
        "No images found in .*empty",
    ),
    (
        ["evaluate", "{root}/truncated.keras", "--dataset", "shapes"],
        "truncated.keras.*not a readable .keras file.*truncated or corrupt",
    ),
    (
        ["evaluate", "{root}/two_inputs.keras", "--dataset", "shapes"],
        "two_inputs.keras.*has 2 input.*one image input",
    ),
    (
        ["predict", "{root}/two_inputs.keras", "{root}/empty", "--output", "{root}/out"],
        "Folder .*empty.*holds no image files",
    ),
    (
        ["predict", "{root}/two_inputs.keras", "{root}/notes.txt", "--output", "{root}/notes.txt"],
        "output_dir.*notes.txt.*is a file",
    ),
]


@pytest.mark.parametrize("argv, message", CASES, ids=lambda case: str(case)[:60])
def test_bad_command_line_fails_with_one_line(files, argv, message):
    before = sorted(os.listdir(files))
    argv = [part.format(root=files) for part in argv]
    with pytest.raises(SystemExit, match=f"^keras-cvlec {argv[0]}: .*{message}"):
        cli.main(argv)
    assert sorted(os.listdir(files)) == before  # nothing written
    assert (files / "notes.txt").read_text() == "mine"


def test_predict_takes_a_folder_of_images(files, tmp_path):
    """A folder stands for its images (it used to raise IsADirectoryError)."""
    from keras_cvlec.training.predict import _image_files

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("b.png", "a.jpg", "notes.txt"):
        (folder / name).write_bytes(PNG)
    assert _image_files([str(folder), str(files / "x.png")]) == [
        str(folder / "a.jpg"),
        str(folder / "b.png"),
        str(files / "x.png"),
    ]
