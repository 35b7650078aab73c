"""Folders of the user's own images (in progress)."""


def load_folder(path, split="train", **kwargs):
    raise NotImplementedError("load_folder is being written")
