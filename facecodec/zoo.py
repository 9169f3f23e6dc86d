"""The model zoo: shipped weights by id, their integrity checks, and loading a model with its entropy tables.

``weights/manifest.json`` lists every weights file by id. A ``.fcz`` header
names the id that encoded it, and decoding looks that id up here: a file
can only be decoded by the exact weights that wrote it.

Each ``ID.safetensors`` holds the network's state dict (fp16) and its entropy
tables: int32 symbol counts, one row per feature channel (see
facecodec.bitstream.entropy), named after the header field that selects them.
Models with per-image quantizer ranges ("ranges", the Theis model) have
``entropy.bits{b}`` for every bit depth b in 1..8; models with gain vectors
("gained") have ``entropy.quality{l}`` for every quality level l.
safetensors cannot execute code on load, unlike a pickle.
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch
from safetensors.torch import load as load_safetensors

from facecodec.bitstream.errors import FczError
from facecodec.models import build_model

ENTROPY_PREFIX = "entropy."


@dataclass(frozen=True)
class Weights:
    weights_id: str
    model: torch.nn.Module            # in eval mode, float32, on ``device``
    stride: int
    channels: int
    entropy_tables: dict[str, np.ndarray]  # "bits6", "quality3", ... -> C x alphabet counts
    device: torch.device
    quantizer: str                    # "ranges" (per-image ranges, --bits) or "gained" (--quality)
    default_quality: int | None       # for "gained": the level used when none is asked for

    @property
    def levels(self) -> int:
        """Number of quality levels (0 for per-image-range models)."""
        return getattr(self.model, "levels", 0) if self.quantizer == "gained" else 0


def manifest() -> dict:
    return json.loads(resources.files("facecodec.weights").joinpath("manifest.json").read_text())


def default_weights_id(quantizer: str | None = None) -> str:
    """The weights `fcz encode` uses; with ``quantizer``, the first installed weights of that kind."""
    listing = manifest()
    if quantizer is None or manifest_entry(listing["default"]).get("quantizer", "ranges") == quantizer:
        return listing["default"]
    for entry in listing["weights"]:
        if entry.get("quantizer", "ranges") == quantizer:
            return entry["id"]
    raise FczError(f"no installed weights use the {quantizer!r} quantizer")


def installed_ids() -> list[str]:
    return [entry["id"] for entry in manifest()["weights"]]


def manifest_entry(weights_id: str) -> dict:
    """The manifest's record of installed weights: file, architecture, settings, training, results."""
    for entry in manifest()["weights"]:
        if entry["id"] == weights_id:
            return entry
    raise FczError(f"weights {weights_id!r} are not installed (installed: {', '.join(installed_ids())}); "
                   f"install the facecodec release that ships them")


@functools.lru_cache(maxsize=4)
def load_weights(weights_id: str, device: str = "cpu") -> Weights:
    """Load (once per id and device) a verified model and its entropy tables."""
    entry = manifest_entry(weights_id)
    blob = resources.files("facecodec.weights").joinpath(entry["file"]).read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != entry["sha256"]:
        raise FczError(f"weights file {entry['file']} is damaged: SHA-256 {digest[:12]}... "
                       f"does not match the manifest's {entry['sha256'][:12]}...")
    tensors = load_safetensors(blob)
    tables = {name[len(ENTROPY_PREFIX):]: tensor.numpy() for name, tensor in tensors.items()
              if name.startswith(ENTROPY_PREFIX)}
    state = {name: tensor.float() if tensor.is_floating_point() else tensor
             for name, tensor in tensors.items() if not name.startswith(ENTROPY_PREFIX)}
    model = build_model(entry["architecture"], channels=entry["channels"], **entry.get("model", {}))
    model.load_state_dict(state)
    model.eval().requires_grad_(False)
    return Weights(weights_id, model.to(device), entry["stride"], entry["channels"], tables, torch.device(device),
                   entry.get("quantizer", "ranges"), entry.get("default_quality"))
