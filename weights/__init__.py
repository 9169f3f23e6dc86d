"""Shipped model weights (safetensors) and manifest.json; data only, installed as ``facecodec.weights``."""
