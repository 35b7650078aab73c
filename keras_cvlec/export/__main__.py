"""`python -m keras_cvlec.export REQUEST.json`: the TensorFlow-side conversion.

`export_model` starts this with `KERAS_BACKEND=tensorflow` when another
backend is active. The request names the `.keras` file, the output folder
and `convert`'s arguments; `convert`'s result goes to `artifacts.json` there.
"""

import json
import os
import sys


def main(request_path):
    import keras
    import numpy as np

    import keras_cvlec  # noqa: F401 - registers the package's layers
    from keras_cvlec.export.convert import convert

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("keras_cvlec.export needs KERAS_BACKEND=tensorflow")
    with open(request_path) as file:
        request = json.load(file)
    model = keras.saving.load_model(request.pop("model"))
    out_dir = request.pop("out_dir")
    if request["representative"] is not None:
        request["representative"] = np.load(request["representative"])
    artifacts = convert(model, out_dir, **request)
    with open(os.path.join(out_dir, "artifacts.json"), "w") as file:
        json.dump(artifacts, file)


if __name__ == "__main__":
    main(sys.argv[1])
