"""Face restoration, ``fcz restore``'s library: one task-conditioned network undoes seven kinds of damage.

    >>> import facecodec
    >>> facecodec.restore("noisy.png", task="denoise")                 # PIL image, same size and mode
    >>> facecodec.restore("small.png", task="superres", scale=4)       # 4x the input's size

Every task is image to image at one size, so one network serves all of them::

    image ─► open_image ─► (superres: bicubic x scale) ─► (inpaint: biharmonic fill) ─► [-1, 1] ─┬─► RestoreNet ─► tiles ─► image
                                                                           condition planes ─┘   (facecodec.models.restore_net)

The condition planes are a one-hot code of the task (``CONDITIONS``: superres
has one per scale) and, for inpainting, a plane marking the holes: pixels
that are pure black in all three channels (facecodec.damage.HOLE_VALUE), the
convention ``fcz restore --task inpaint`` documents. The holes reach the
network already filled by biharmonic inpainting (``fill_holes``): a smooth
guess it refines, where black holes left it to invent every pixel (weights
trained so stayed 6.5 dB under that very fill inside the holes); every other
pixel comes back exactly as it came in. Greyscale inputs come back greyscale,
except from ``colorize``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from facecodec.arrays import padded_array, to_image
from facecodec.batching import batches
from facecodec.bitstream import FczError
from facecodec.damage import DAMAGE, HOLE_VALUE, condition_of, greyscale, upscale_bicubic
from facecodec.devices import require_torch, resolve_device
from facecodec.image_io import DEFAULT_MAX_PIXELS, ImageInput, check_size, open_image
from facecodec.models.tiling import run_in_tiles
from facecodec.zoo import RestoreWeights, default_restore_id, load_restore_weights

require_torch("fcz restore")  # a light install (no torch) gets this one line, not an ImportError
import torch  # noqa: E402

from facecodec.numerics import consistent_convolutions  # noqa: E402
from facecodec.tensors import to_pixels  # noqa: E402

CONDITIONS = tuple(DAMAGE)  # the network's one-hot conditions: TASKS with superres split by scale
INPUT_PLANES = len(CONDITIONS) + 1  # the one-hot code and the hole plane, beside RGB
TILE = 512    # pixels a side per network pass: bounds memory for large images (512x512 takes one pass)
# Context each tile borrows from its neighbours. Less than the network's whole receptive field
# (about 300 px through four poolings); the restored pixels of a tiled pass stay within MAX_TILE_ERROR
# 8-bit levels of one whole-image pass (tests/test_restore.py measures it).
MARGIN = 96
MAX_TILE_ERROR = 1  # 8-bit levels; measured with the shipped weights: see MARGIN


def network_input(damaged: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
    """Damaged RGB ``N x 3 x H x W`` in [0, 1] and condition indices ``N`` -> the network's ``N x (3 + INPUT_PLANES) x H x W``.

    The trainer and ``restore`` both build the input here, so they cannot disagree.
    """
    n, _, height, width = damaged.shape
    planes = damaged.new_zeros(n, INPUT_PLANES, height, width)
    planes[torch.arange(n), conditions] = 1
    inpaint = conditions == CONDITIONS.index("inpaint")
    holes = black_pixels(damaged) & inpaint[:, None, None]
    planes[:, -1] = holes
    return torch.cat([fill_holes(damaged, holes) * 2 - 1, planes], 1)


def black_pixels(images: torch.Tensor) -> torch.Tensor:
    """``N x H x W``: where images ``N x 3 x H x W`` in [0, 1] are pure black, inpainting's holes."""
    return (images == HOLE_VALUE / 255).all(1)


def fill_holes(images: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
    """Images ``N x 3 x H x W`` in [0, 1] with each one's holes (``N x H x W`` bool) filled by biharmonic inpainting."""
    if not holes.any():
        return images
    from skimage.restoration import inpaint_biharmonic  # only inpainting needs it: a sparse solve on the CPU

    filled = images.clone()
    for i in torch.nonzero(holes.flatten(1).any(1)).flatten().tolist():
        mask = holes[i].cpu().numpy()
        if mask.all():  # nothing to fill from: leave it black
            continue
        pixels = images[i].permute(1, 2, 0).float().cpu().numpy()
        result = inpaint_biharmonic(pixels, mask, channel_axis=-1)
        filled[i] = torch.from_numpy(result).permute(2, 0, 1).to(images)
    return filled


def load(device: str = "auto", weights_id: str | None = None, condition: str | None = None) -> RestoreWeights:
    """The installed restoration network on ``device``: ``weights_id``, or the default one for ``condition``."""
    return load_restore_weights(weights_id or default_restore_id(condition), resolve_device(device))


def prepare(image: ImageInput, task: str, scale: int | None = None,
            max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[Image.Image, str]:
    """Read an input -> (the RGB image the network restores, the output's mode).

    Superresolution's input is bicubic-upscaled here, after checking the output's size
    against ``max_pixels``; colorize's is reduced to luma, so a colour photo asked to be
    colorized gets new colours, not its own.
    """
    condition_of(task, scale)
    rgb, mode = open_image(image, max_pixels, to_encode=False)
    if task == "superres":
        width, height = rgb.width * scale, rgb.height * scale
        check_size(width, height, max_pixels)
        rgb = Image.fromarray(upscale_bicubic(rgb, width, height))
    if task == "colorize":
        return Image.fromarray(greyscale(rgb)), "RGB"
    return rgb, mode


def restore_pixels(weights: RestoreWeights, x: np.ndarray, condition: str, tile: int = TILE) -> np.ndarray:
    """Padded images ``N x 3 x H x W`` in [0, 1] (H, W multiples of the stride) -> restored uint8 pixels, tile by tile."""
    if weights.conditions != CONDITIONS:  # network_input codes the conditions in this order
        raise FczError(f"weights {weights.weights_id!r} were trained for the conditions {', '.join(weights.conditions)}; "
                       f"this facecodec codes {', '.join(CONDITIONS)}")
    index = torch.full((len(x),), CONDITIONS.index(condition), device=weights.device)

    def run(part: np.ndarray) -> np.ndarray:
        tile = torch.from_numpy(np.ascontiguousarray(part)).to(weights.device)
        with torch.inference_mode(), consistent_convolutions():  # a folder run's batches give each file's pixels
            out = (weights.model(network_input(tile, index).contiguous(memory_format=torch.channels_last)) + 1) / 2
        if condition == "inpaint":  # only the holes are the network's to fill: the other pixels stay the input's
            out = torch.where(black_pixels(tile)[:, None], out, tile)
        return to_pixels(out).cpu().numpy()

    return run_in_tiles(run, x, tile, MARGIN)


def restore(image: ImageInput, task: str, scale: int | None = None, weights_id: str | None = None,
            device: str = "auto", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Restore a damaged face -> PIL image (the input's size and mode; superres: ``scale`` times the size;
    colorize: RGB).

    ``image``: a PIL image, a uint8 array, the bytes of an image file, a path or a binary
    file object. ``task``: one of facecodec.damage.TASKS; ``scale`` (4 or 8) for superres only. For
    inpaint, pure-black pixels are the holes. Images of more than ``max_pixels`` pixels
    (superres: outputs) are refused (None: no limit). Raises FczError for bad inputs.
    """
    outcome = restore_many([prepare(image, task, scale, max_pixels)], task, scale, weights_id, device)[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def restore_many(images: Sequence[tuple[Image.Image, str]], task: str, scale: int | None = None,
                 weights_id: str | None = None, device: str = "auto", batch_size: int = 1
                 ) -> list[Image.Image | Exception]:
    """Images as ``prepare`` gives them (the RGB input and the output's mode) -> per image, in order, the restored
    image or the exception that stopped it alone. Same-size images go through the network ``batch_size`` at a time;
    each comes out as it would alone (facecodec.numerics)."""
    condition = condition_of(task, scale)
    weights = load(device, weights_id, condition)
    padded = [padded_array(rgb, weights.model.stride)[0] for rgb, _ in images]
    outcomes: list = [None] * len(images)
    for batch in batches(range(len(images)), key=lambda i: tuple(padded[i].shape), pixels=lambda i: padded[i][0, 0].size,
                         batch_size=batch_size):
        try:
            pixels = restore_pixels(weights, np.concatenate([padded[i] for i in batch]), condition)
        except Exception as exc:  # noqa: BLE001  (out of memory, say: the batch fails, the others go on)
            for i in batch:
                outcomes[i] = exc
            continue
        for k, i in enumerate(batch):
            rgb, mode = images[i]
            outcomes[i] = to_image(pixels[k:k + 1], rgb.width, rgb.height, mode)
    return outcomes
