"""`python -m keras_cvlec.export REQUEST.json`: the TensorFlow-side conversion.

`export_model` starts this with `KERAS_BACKEND=tensorflow` when another
backend is active. The request names the `.keras` file, the output folder,
the modules that define the model's custom objects (imported first, with the
parent's `sys.path`) and `convert`'s arguments; `convert`'s result goes to
`artifacts.json` there.
"""

import importlib
import json
import os
import sys

__all__ = ["main"]


def main(request_path):
    import keras
    import numpy as np

    import keras_cvlec  # noqa: F401 - registers the package's layers
    from keras_cvlec.export.convert import convert

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("keras_cvlec.export needs KERAS_BACKEND=tensorflow")
    with open(request_path) as file:
        request = json.load(file)
    sys.path.extend(path for path in request.pop("sys_path") if path not in sys.path)
    for module in request.pop("modules"):
        importlib.import_module(module)
    model = keras.saving.load_model(request.pop("model"), compile=False)
    out_dir = request.pop("out_dir")
    if request["representative"] is not None:
        request["representative"] = np.load(request["representative"])
    artifacts = convert(model, out_dir, **request)
    with open(os.path.join(out_dir, "artifacts.json"), "w") as file:
        json.dump(artifacts, file)


if __name__ == "__main__":
    main(sys.argv[1])
