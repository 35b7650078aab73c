"""Export to SavedModel, TFLite and ONNX, verified against the Keras model.

`export_model` works whatever Keras backend is active: the conversion always
runs under TensorFlow (in this process on the TensorFlow backend, otherwise
in one TensorFlow-backend subprocess that loads the model's `.keras` file),
and every artifact is then run in its own runtime and compared with the
model's own outputs in this process.
"""

from keras_cvlec.export.exporter import (
    EXPORT_EXTRA,
    FORMATS,
    QUANTIZATIONS,
    ExportProcessError,
    ExportResult,
    export_model,
)
from keras_cvlec.export.verify import ArtifactReport, VerificationError

__all__ = [
    "EXPORT_EXTRA",
    "FORMATS",
    "QUANTIZATIONS",
    "ArtifactReport",
    "ExportProcessError",
    "ExportResult",
    "VerificationError",
    "export_model",
]
