"""Every `>>>` example in a keras_cvlec docstring runs and prints what it
shows, on the active backend."""

import doctest
import importlib
import pkgutil
import re

import keras
import numpy as np
import pytest

import keras_cvlec

MODULES = sorted(m.name for m in pkgutil.walk_packages(keras_cvlec.__path__, "keras_cvlec."))
# TensorFlow prints a shape as `TensorShape([1, 8])` and torch as
# `torch.Size([1, 8])`; the docstrings show the tuple JAX prints.
_SHAPE = re.compile(r"(?:TensorShape|torch\.Size)\(\[([^\]]*)\]\)")


class _ShapeChecker(doctest.OutputChecker):
    def check_output(self, want, got, optionflags):
        got = _SHAPE.sub(lambda m: f"({m.group(1)}{',' if ',' not in m.group(1) else ''})", got)
        return super().check_output(want, got, optionflags)


def _doctests(module_name):
    module = importlib.import_module(module_name)
    return [t for t in doctest.DocTestFinder().find(module, module_name) if t.examples]


def test_every_module_is_searched():
    assert {"keras_cvlec.models.unet", "keras_cvlec.layers.unpooling", "keras_cvlec.losses"} <= set(
        MODULES
    )
    assert sum(len(_doctests(name)) for name in MODULES) >= 50


@pytest.mark.parametrize("module_name", [m for m in MODULES if _doctests(m)])
def test_docstring_examples(module_name, tmp_path, monkeypatch):
    # Examples that write files (e.g. an export) write into a fresh folder.
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(
        checker=_ShapeChecker(), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    report = []
    for test in _doctests(module_name):
        test.globs.update({"np": np, "keras": keras, "keras_cvlec": keras_cvlec})
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
