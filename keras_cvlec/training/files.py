"""Atomic file writes: a file is either the old one or the complete new one."""

import json
import os

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "check_output_folder",
    "read_json",
    "save_model_atomically",
    "write_json",
]


def atomic_write(path, write):
    """Calls `write(temporary_path)`, then moves the result to `path`. The
    temporary path keeps `path`'s extension (`model.save` needs `.keras`)."""
    root, extension = os.path.splitext(path)
    temporary = f"{root}.tmp{os.getpid()}{extension}"
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def atomic_write_text(path, text):
    """Writes `text` to `path` atomically."""

    def write(temporary):
        with open(temporary, "w") as file:
            file.write(text)

    atomic_write(path, write)


def write_json(path, data):
    """Writes `data` as indented JSON to `path` atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path):
    """The JSON content of `path`."""
    with open(path) as file:
        return json.load(file)


def save_model_atomically(model, path):
    """Saves `model` to the `.keras` file `path` (creating its folder): a
    killed process leaves the old file or the complete new one.

    Example:

    >>> save_model_atomically(model, "runs/unet.keras")  # doctest: +SKIP
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, model.save)


def check_output_folder(name, path):
    """Raises a `ValueError` naming argument `name` unless `path` is a folder
    that exists and is writable, or can be created (its nearest existing
    parent is a writable folder); returns `path`."""
    path = os.fspath(path)
    if not path:
        raise ValueError(f"`{name}` must name a folder. Received: {name}={path!r}")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"`{name}` {path!r} is a file: it must name a folder.")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"`{name}` {path!r} cannot be written: {existing!r} is not a writable folder."
        )
    return path
