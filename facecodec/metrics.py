"""Quality measures as the benchmarks define them: on 8-bit RGB, per image."""
from __future__ import annotations

import numpy as np
from PIL import Image


def psnr(original: np.ndarray | Image.Image, decoded: np.ndarray | Image.Image) -> float:
    """PSNR in dB between two 8-bit images of the same size (greyscale compared as RGB)."""
    a = np.asarray(_rgb(original), dtype=np.float64)
    b = np.asarray(_rgb(decoded), dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def bits_per_pixel(file_size: int, width: int, height: int) -> float:
    return 8 * file_size / (width * height)


def _rgb(image: np.ndarray | Image.Image) -> np.ndarray | Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
