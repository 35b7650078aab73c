"""Export to SavedModel, TFLite and ONNX, with numerical verification."""
