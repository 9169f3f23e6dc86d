"""The model zoo: shipped weights by id, their integrity checks, and loading a model with its entropy tables.

``weights/manifest.json`` lists every weights file by id. A ``.fcz`` header
names the id that encoded it, and decoding looks that id up here: a file
can only be decoded by the exact weights that wrote it.

Each ``ID.safetensors`` holds the network's state dict (fp16) and, for every
quantizer bit depth b in 1..8, ``entropy.bits{b}``: int32 symbol counts, one row
per feature channel (see facecodec.bitstream.entropy). safetensors cannot
execute code on load, unlike a pickle.
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

ENTROPY_PREFIX = "entropy.bits"


@dataclass(frozen=True)
class Weights:
    weights_id: str
    model: torch.nn.Module            # in eval mode, float32, on ``device``
    stride: int
    channels: int
    entropy_tables: dict[int, np.ndarray]  # bits -> C x 2**bits counts
    device: torch.device


def manifest() -> dict:
    return json.loads(resources.files("facecodec.weights").joinpath("manifest.json").read_text())


def default_weights_id() -> str:
    return manifest()["default"]


def installed_ids() -> list[str]:
    return [entry["id"] for entry in manifest()["weights"]]


def _entry(weights_id: str) -> dict:
    for entry in manifest()["weights"]:
        if entry["id"] == weights_id:
            return entry
    raise FczError(f"weights {weights_id!r} are not installed (installed: {', '.join(installed_ids())}); "
                   f"install the facecodec release that ships them")


@functools.lru_cache(maxsize=4)
def load_weights(weights_id: str, device: str = "cpu") -> Weights:
    """Load (once per id and device) a verified model and its entropy tables."""
    entry = _entry(weights_id)
    blob = resources.files("facecodec.weights").joinpath(entry["file"]).read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != entry["sha256"]:
        raise FczError(f"weights file {entry['file']} is damaged: SHA-256 {digest[:12]}... "
                       f"does not match the manifest's {entry['sha256'][:12]}...")
    tensors = load_safetensors(blob)
    tables = {int(name[len(ENTROPY_PREFIX):]): tensor.numpy() for name, tensor in tensors.items()
              if name.startswith(ENTROPY_PREFIX)}
    state = {name: tensor.float() if tensor.is_floating_point() else tensor
             for name, tensor in tensors.items() if not name.startswith(ENTROPY_PREFIX)}
    model = build_model(entry["architecture"], channels=entry["channels"])
    model.load_state_dict(state)
    model.eval().requires_grad_(False)
    return Weights(weights_id, model.to(device), entry["stride"], entry["channels"], tables, torch.device(device))
