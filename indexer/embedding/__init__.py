"""Embedders: the protocol the index needs, model resolution, torch and ONNX backends."""
