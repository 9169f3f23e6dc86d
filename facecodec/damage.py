"""The damage that ``fcz restore`` undoes, made on purpose: the training pairs and the benchmark's inputs.

Every function takes an 8-bit image (``H x W x 3`` uint8 array or PIL image)
and returns a uint8 array, as a damaged photo on disk would be. Randomness
comes only from ``seed``, so a damage is reproducible on any machine:

    noisy = gaussian_noise(face, sigma=25 / 255, seed=7)
    holed, mask = missing_blocks(face, seed=7)      # mask: True inside the holes
    small = downscale(face, 4)                      # (H // 4) x (W // 4)

    image ──► noise | blocks | blur | pixelate | jpeg | downscale | greyscale ──► damaged uint8

``DAMAGE`` maps each ``fcz restore --task`` to the damage it undoes with the
benchmark's settings (the issue's targets); ``damage_for_training`` draws the
same damages with settings jittered around those, for the trainer. Holes are
filled with black (``HOLE_VALUE``): ``fcz restore --task inpaint`` treats
pure-black pixels as missing.

No torch here, and scikit-image only once a blur is asked for.
"""
from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image

from facecodec import classical
from facecodec.bitstream.errors import FczError

TASKS = ("denoise", "inpaint", "deblur", "depixelate", "dejpeg", "superres", "colorize")  # fcz restore --task
SCALES = (4, 8)  # superres
HOLE_VALUE = 0  # what missing_blocks writes into a hole, in every channel

BENCHMARK_NOISE_SIGMA = 25 / 255
BENCHMARK_BLUR_SIGMA = 2.0
BENCHMARK_PIXEL_CELL = 8
BENCHMARK_JPEG_QUALITY = 15


def _array(image: np.ndarray | Image.Image) -> np.ndarray:
    array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"damage takes uint8 H x W x 3 images, not {array.dtype} {array.shape}")
    return array


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values), 0, 255).astype(np.uint8)


def gaussian_noise(image: np.ndarray | Image.Image, sigma: float = BENCHMARK_NOISE_SIGMA, seed: int = 0) -> np.ndarray:
    """Add white Gaussian noise of standard deviation ``sigma`` (on the [0, 1] scale), clipped to 8 bits."""
    array = _array(image)
    noise = np.random.default_rng(seed).normal(0.0, sigma * 255, array.shape)
    return _to_uint8(array + noise)


def missing_blocks(image: np.ndarray | Image.Image, count: int = 5, min_side: float = 0.08, max_side: float = 0.2,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Black out ``count`` random squares -> (damaged image, H x W bool mask of the holes).

    Each side is a uniform fraction ``min_side..max_side`` of the image's shorter side
    (at least one pixel); squares may overlap and always lie inside the image.
    """
    array = _array(image).copy()
    height, width = array.shape[:2]
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), bool)
    for _ in range(count):
        side = max(1, min(height, width, int(round(rng.uniform(min_side, max_side) * min(height, width)))))
        top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        mask[top:top + side, left:left + side] = True
    array[mask] = HOLE_VALUE
    return array, mask


def gaussian_blur(image: np.ndarray | Image.Image, sigma: float = BENCHMARK_BLUR_SIGMA) -> np.ndarray:
    """Blur with a Gaussian of ``sigma`` pixels (edges reflected), as an out-of-focus lens would."""
    from skimage.filters import gaussian  # here, not at the top: the CLI imports this module, and scipy takes 0.3 s

    array = _array(image)
    return _to_uint8(gaussian(array.astype(np.float64), sigma=sigma, channel_axis=-1, mode="reflect",
                              preserve_range=True))


def pixelate(image: np.ndarray | Image.Image, cell: int = BENCHMARK_PIXEL_CELL) -> np.ndarray:
    """Replace each ``cell x cell`` square (partial ones at the right and bottom edges too) by its mean colour."""
    array = _array(image)
    height, width = array.shape[:2]
    rows, cols = np.arange(0, height, cell), np.arange(0, width, cell)
    sums = np.add.reduceat(np.add.reduceat(array.astype(np.float64), rows, axis=0), cols, axis=1)
    counts = np.outer(np.diff(np.append(rows, height)), np.diff(np.append(cols, width)))[..., None]
    means = _to_uint8(sums / counts)
    return np.repeat(np.repeat(means, cell, axis=0), cell, axis=1)[:height, :width]


def jpeg(image: np.ndarray | Image.Image, quality: int = BENCHMARK_JPEG_QUALITY) -> np.ndarray:
    """Round-trip through baseline JPEG at ``quality`` (libjpeg via Pillow, 4:2:0, the project's JPEG settings)."""
    data = classical.encode(_array(image), "JPEG", classical.jpeg_options(quality, subsampling=2))
    return _array(Image.open(io.BytesIO(data)))


def downscale(image: np.ndarray | Image.Image, scale: int) -> np.ndarray:
    """Shrink by ``scale`` with an antialiasing box filter -> ``(H // scale) x (W // scale)``.

    The box filter averages whole ``scale x scale`` cells when the size divides, as a camera sensor's
    binning would; a remainder of fewer than ``scale`` pixels at the right and bottom is dropped.
    """
    array = _array(image)
    height, width = array.shape[0] // scale, array.shape[1] // scale
    if height < 1 or width < 1:
        raise ValueError(f"a {array.shape[1]}x{array.shape[0]} image is too small to shrink {scale}x")
    cropped = Image.fromarray(array[:height * scale, :width * scale])
    return np.asarray(cropped.resize((width, height), Image.Resampling.BOX))


def upscale_bicubic(image: np.ndarray | Image.Image, width: int, height: int) -> np.ndarray:
    """Resize to ``width x height`` with Pillow's bicubic filter: the classical super-resolution."""
    return np.asarray(Image.fromarray(_array(image)).resize((width, height), Image.Resampling.BICUBIC))


def greyscale(image: np.ndarray | Image.Image) -> np.ndarray:
    """ITU-R 601 luma (Pillow's "L"), repeated in all three channels."""
    luma = np.asarray(Image.fromarray(_array(image)).convert("L"))
    return np.repeat(luma[..., None], 3, axis=2)


# The damage each task undoes, at the benchmark's settings. superres{4,8} return the small image.
DAMAGE: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "denoise": lambda image, seed: gaussian_noise(image, seed=seed),
    "inpaint": lambda image, seed: missing_blocks(image, seed=seed)[0],
    "deblur": lambda image, seed: gaussian_blur(image),
    "depixelate": lambda image, seed: pixelate(image),
    "dejpeg": lambda image, seed: jpeg(image),
    "superres4": lambda image, seed: downscale(image, 4),
    "superres8": lambda image, seed: downscale(image, 8),
    "colorize": lambda image, seed: greyscale(image),
}


def condition_of(task: str, scale: int | None = None) -> str:
    """The ``DAMAGE`` key (the network's condition) of a task: ``superres`` needs ``scale``, the others take none."""
    if task not in TASKS:
        raise FczError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if task == "superres":
        if scale is None:
            raise FczError(f"superres needs a scale: {' or '.join(map(str, SCALES))} (--scale)")
        if scale not in SCALES:
            raise FczError(f"superres needs a scale of {' or '.join(map(str, SCALES))}, not {scale}")
        return f"superres{scale}"
    if scale is not None:
        raise FczError(f"a scale is for superres only, not {task}")
    return task


def damage_for_training(image: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """``condition``'s damage with its setting drawn around the benchmark's, same size out as in.

    Superresolution comes back bicubic-upscaled to the input's size: the network's input
    for that task (the image's sides must be multiples of the scale). The jitter keeps the
    network from learning one exact noise level or JPEG quality only.
    """
    seed = int(rng.integers(2**31))
    if condition == "denoise":
        return gaussian_noise(image, sigma=rng.uniform(10, 35) / 255, seed=seed)
    if condition == "inpaint":
        # Sides as a share of the training crop (64 px), drawn to span the benchmark's holes in pixels
        # (8-20 % of a 150-200 px face: 12-40 px); 8-20 % of the crop itself, at most 13 px, taught
        # small holes only.
        return missing_blocks(image, count=int(rng.integers(1, 6)), min_side=0.12, max_side=0.5, seed=seed)[0]
    if condition == "deblur":
        return gaussian_blur(image, sigma=rng.uniform(1.0, 3.0))
    if condition == "depixelate":
        return pixelate(image, cell=int(rng.integers(4, 11)))
    if condition == "dejpeg":
        return jpeg(image, quality=int(rng.integers(8, 41)))
    if condition in ("superres4", "superres8"):
        height, width = image.shape[:2]
        return upscale_bicubic(downscale(image, int(condition[-1])), width, height)
    if condition == "colorize":
        return greyscale(image)
    raise ValueError(f"unknown condition {condition!r}; known: {', '.join(DAMAGE)}")


def damaged_same_size(image: np.ndarray | Image.Image, condition: str, seed: int = 0) -> np.ndarray:
    """``condition``'s benchmark damage, superresolution's small image bicubic-upscaled back: the network's input.

    For superres the image's sides must be multiples of the scale.
    """
    array = _array(image)
    damaged = DAMAGE[condition](array, seed)
    if damaged.shape != array.shape:
        damaged = upscale_bicubic(damaged, array.shape[1], array.shape[0])
    return damaged
