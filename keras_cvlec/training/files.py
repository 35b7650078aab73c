"""Atomic file writes: a file is either the old one or the complete new one."""

import json
import os


def atomic_write(path, write):
    """Calls `write(temporary_path)`, then moves the result to `path`."""
    temporary = f"{path}.tmp{os.getpid()}"
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
