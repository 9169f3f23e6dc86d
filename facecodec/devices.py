"""Where the transforms run: ``--device auto|cpu|cuda``.

The wavelet family runs on the CPU without torch unless ``cuda`` is asked for; the torch networks take
``auto`` as ``cuda`` where PyTorch sees a GPU (``resolve_device``, which is what imports torch).
"""
from __future__ import annotations

from facecodec.bitstream import FczError

DEVICES = ("auto", "cpu", "cuda")


def known_device(device: str) -> str:
    """``device`` if it is a device name, else FczError; imports nothing."""
    if device not in DEVICES:
        raise FczError(f"unknown device {device!r}: use {', '.join(DEVICES)}")
    return device


def require_torch(what: str) -> None:
    """FczError saying that ``what`` needs PyTorch, where it is not installed (the light install)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise FczError(f"{what} needs PyTorch, which is not installed: pip install 'facecodec[torch]'") from None


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` where PyTorch sees a GPU, else ``cpu``; FczError for an unknown or missing device, or
    when torch, which runs every network, is not installed."""
    known_device(device)
    require_torch("a torch network (these weights, --device cuda, fcz restore)")
    import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FczError("--device cuda was asked for, but PyTorch sees no CUDA GPU here")
    return device
