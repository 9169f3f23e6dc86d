"""Face images for training: the whole folder decoded once into one uint8 array, then random crops.

UTKFace's 22k 200x200 faces take 2.7 GB as uint8, which fits in memory and
saves decoding a JPEG per sample on a 2-core machine. The decoded array is
cached as .npy in ``RUNS_DIR/cache/`` so a resumed run starts in seconds.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from facecodec.train.config import TrainingError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def list_images(folder: str | Path) -> list[Path]:
    """The folder's images by name; TrainingError if the folder is missing or holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TrainingError(f"data folder {folder} does not exist")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise TrainingError(f"data folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths


def load_folder(folder: str | Path, cache_dir: str | Path | None = None, limit: int | None = None) -> np.ndarray:
    """All images of ``folder`` (same size, RGB) as ``N x H x W x 3`` uint8."""
    paths = list_images(folder)[:limit]
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{Path(folder).resolve().name}-{len(paths)}.npy"
        if cache.exists():
            return np.load(cache, mmap_mode="r")
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    sizes = sorted({a.shape[1::-1] for a in arrays})
    if len(sizes) > 1:
        raise TrainingError(f"images in {folder} differ in size ({', '.join(f'{w}x{h}' for w, h in sizes[:4])}...); "
                            f"training needs one size")
    images = np.stack(arrays)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, images)
        os.replace(tmp, cache)
    return images


class RandomCrops:
    """Batches of random crops with horizontal flips and scale jitter, as float tensors in [0, 1].

    Scale jitter takes a square of side ``crop * s`` (s uniform in [1, max_scale],
    capped by the image) and resizes it to ``crop``, so the network sees faces at
    several sizes: test faces (LFW) are framed looser than UTKFace's.
    """

    def __init__(self, images: np.ndarray, crop: int, batch_size: int, max_scale: float, seed: int) -> None:
        self.images, self.crop, self.batch_size, self.max_scale = images, crop, batch_size, max_scale
        self.rng = np.random.default_rng(seed)

    def next_batch(self) -> torch.Tensor:
        n, h, w, _ = self.images.shape
        scale = self.rng.uniform(1.0, self.max_scale)
        side = min(int(round(self.crop * scale)), h, w)
        idx = self.rng.integers(0, n, self.batch_size)
        tops = self.rng.integers(0, h - side + 1, self.batch_size)
        lefts = self.rng.integers(0, w - side + 1, self.batch_size)
        crops = np.stack([self.images[i, t:t + side, l:l + side] for i, t, l in zip(idx, tops, lefts)])
        flips = self.rng.random(self.batch_size) < 0.5
        crops[flips] = crops[flips, :, ::-1]
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255)
        if side != self.crop:
            x = F.interpolate(x, size=(self.crop, self.crop), mode="bilinear", antialias=True, align_corners=False)
        return x.clamp_(0, 1)
