"""Where the networks run: ``--device auto|cpu|cuda`` to a torch device name."""
from __future__ import annotations

from facecodec.bitstream import FczError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` where PyTorch sees a GPU, else ``cpu``; FczError for an unknown or missing device."""
    if device not in DEVICES:
        raise FczError(f"unknown device {device!r}: use {', '.join(DEVICES)}")
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FczError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
    return device
