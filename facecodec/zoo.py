"""The model zoo: shipped weights by id, their integrity checks, and loading them.

``weights/manifest.json`` lists every weights file by id. A ``.fcz`` header
names the id that encoded it, and decoding looks that id up here: a file
can only be decoded by the exact weights that wrote it.

Each ``ID.safetensors`` holds the network's state dict (fp16) and its entropy
tables: integer symbol counts, one row per feature channel (see
facecodec.bitstream.entropy; the wavelet family's context tables, weights and
thresholds: facecodec.bitstream.contexts), stored as ``entropy.<table name>`` where
the weights' family (facecodec.families) names one table per setting.
safetensors cannot execute code on load, unlike a pickle.

Loading happens in two steps. ``load_spec`` reads what a file promises (family,
stride, channels, entropy tables) without torch, which is all that
header checks and ``fcz info`` need. ``load_weights`` adds what runs the transforms, as the
weights' family builds it (``Family.load``): numpy and ONNX Runtime for the wavelet family, a
torch network on a device for the others. Files beside a weights file that its entry names
(the post-filter's ONNX graph, ``postfilter_graph``) are checked against their SHA-256 too.

Entries with ``"kind": "restore"`` are restoration networks for ``fcz restore``
(facecodec.restoration), not codecs: they hold a state dict only, their entry the
network's options (``model``), the ``conditions`` its input codes and those it
``serves`` (was trained for), and ``load_restore_weights`` loads them. An entry without ``kind`` is a codec; the
codec functions here (``installed_ids``, ``manifest_entry``, ``load_spec``, ...)
see codec entries only, so a ``.fcz`` header naming a restoration network is
refused like any id that is not installed.

An entry without ``file`` is a coder with no learned parts (the ``jpeg-file``
family: a JPEG's own coefficients, coded by Lepton): it has a family, settings and
results like any codec, and no tensors to load or verify.
"""
from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors import safe_open

from facecodec.bitstream import FczError, FczHeader
from facecodec.families import OPTION_NOUNS, Family, family_class

if TYPE_CHECKING:
    import torch

    from facecodec.models.transform import Transform

ENTROPY_PREFIX = "entropy."
CODEC, RESTORE = "codec", "restore"  # a manifest entry's "kind" (absent: codec)


@dataclass(frozen=True)
class WeightsSpec:
    """What installed weights promise a ``.fcz`` file, read without running (or importing) a network."""

    weights_id: str
    stride: int
    channels: int
    family: Family
    entropy_tables: Mapping[str, np.ndarray]  # table name ("quality3", "bits6", ...) -> C x alphabet counts

    def table(self, header: FczHeader) -> Any:
        """The entropy model that codes ``header``'s payload, after checking the header fits these weights.

        For the per-channel families an integer count table ``C x alphabet``; whatever the
        family's ``entropy_model`` makes of the weights' tables for others.
        """
        if header.latent_shape[0] != self.channels or header.stride != self.stride:
            raise FczError(f"corrupt file: latent shape {header.latent_shape} is not what weights "
                           f"{self.weights_id!r} produce ({self.channels} channels, stride {self.stride})")
        if header.pad_right >= self.stride or header.pad_bottom >= self.stride:
            raise FczError("corrupt file: padding is not smaller than the model's stride")
        setting = self.family.check_header(header, self.weights_id)
        return self.family.entropy_model(self.entropy_tables, setting)


@dataclass(frozen=True)
class Weights(WeightsSpec):
    """A spec with what runs it loaded (``Family.load``): ``model``, what the family's ``quantize`` and ``dequantize``
    read; ``transform``, what runs g_a and g_s (facecodec.models.transform)."""

    model: Any
    transform: Transform


@dataclass(frozen=True)
class RestoreWeights:
    """A restoration network (facecodec.models.restore_net), loaded: eval mode, float32, on ``device``."""

    weights_id: str
    conditions: tuple[str, ...]  # the one-hot conditions it was trained on, in input-plane order
    model: torch.nn.Module
    device: torch.device


def weights_folder() -> Path:
    """Where the installed weights lie (the ``facecodec.weights`` package; a plain folder, as setup.cfg installs it:
    its path, not importlib.resources, whose import a one-file decode would pay for)."""
    from facecodec import weights

    return Path(weights.__file__).parent


@functools.lru_cache(maxsize=1)
def manifest() -> dict:
    """weights/manifest.json, parsed once (``clear_caches`` forgets it)."""
    return json.loads((weights_folder() / "manifest.json").read_text())


def _entries(kind: str) -> list[dict]:
    return [entry for entry in manifest()["weights"] if entry.get("kind", CODEC) == kind]


def installed_ids(kind: str = CODEC) -> list[str]:
    """Ids of the installed codec weights (``kind=RESTORE``: restoration networks)."""
    return [entry["id"] for entry in _entries(kind)]


def pixel_codec_ids() -> list[str]:
    """Ids of the installed codec weights that code any picture's pixels: all but those that keep a JPEG's
    coefficients, a JPEG file's own (``Family.keeps_jpeg_files``), which take nothing but a JPEG, or one rebuilt
    from the pixels (``Family.rebuilds_jpeg``), whose Lepton stream alone outgrows the format's bound on the
    payload of a picture of a few pixels."""
    families = {entry["id"]: family_class(entry["family"]) for entry in _entries(CODEC)}
    return [weights_id for weights_id, family in families.items()
            if not (family.keeps_jpeg_files or family.rebuilds_jpeg)]


def manifest_entry(weights_id: str, kind: str = CODEC) -> dict:
    """The manifest's record of installed weights of ``kind``: file, architecture, settings, training, results."""
    for entry in _entries(kind):
        if entry["id"] == weights_id:
            return entry
    raise FczError(f"weights {weights_id!r} are not installed (installed: {', '.join(installed_ids(kind))}); "
                   f"install the facecodec release that ships them")


def default_weights_id(option: str | None = None) -> str:
    """The weights `fcz encode` uses; with ``option`` ("quality", "bits"), the first installed weights taking it."""
    listing = manifest()
    entries = sorted(_entries(CODEC), key=lambda e: e["id"] != listing["default"])  # the default first
    for entry in entries:
        if option is None or family_class(entry["family"]).option == option:
            return entry["id"]
    raise FczError(f"no installed weights take a {OPTION_NOUNS.get(option, option)}")


def lossless_weights_id(jpeg_files: bool = False, rebuilt_jpeg: bool = False) -> str:
    """The first installed weights that decode to exactly the pixels encoded (``encode(lossless=True)``) from the
    pixels, or (``jpeg_files``) from the JPEG file they came from (facecodec.families.jpeg_file), or
    (``rebuilt_jpeg``) from the pixels as a JPEG rebuilt from them (facecodec.families.jpeg_rebuilt)."""
    for entry in _entries(CODEC):
        family = family_class(entry["family"])
        if family.lossless and family.keeps_jpeg_files == jpeg_files and family.rebuilds_jpeg == rebuilt_jpeg:
            return entry["id"]
    kind = "JPEG files" if jpeg_files else "pixels as rebuilt JPEGs" if rebuilt_jpeg else "pixels"
    raise FczError(f"no installed weights code {kind} losslessly")


def choose(quality: int | None = None, bits: int | None = None,
           weights_id: str | None = None, lossless: bool = False) -> tuple[WeightsSpec, int]:
    """The weights and setting an encode uses, after checking that ``quality`` or ``bits`` fits them.

    Without a weights id, the option given picks the weights: the default ones if
    they take it, else the first installed weights that do (``bits`` -> the seed's model); ``lossless``: the
    lossless weights (``lossless_weights_id``), which take neither.
    """
    given = {option: value for option, value in (("quality", quality), ("bits", bits)) if value is not None}
    if len(given) > 1:
        raise FczError("give a quality level or a bit depth, not both")
    if lossless:
        if given:
            raise FczError(f"lossless keeps every pixel: it takes no {OPTION_NOUNS[next(iter(given))]}")
        spec = load_spec(weights_id or lossless_weights_id())
        if not spec.family.lossless:
            raise FczError(f"weights {spec.weights_id!r} are lossy; lossless needs lossless weights "
                           f"({lossless_weights_id()})")
        return spec, spec.family.choose(None)
    option, value = next(iter(given.items()), (None, None))
    spec = load_spec(weights_id or default_weights_id(option))
    family = spec.family
    if option not in (None, family.option):
        raise FczError(f"weights {spec.weights_id!r} take a {family.noun} "
                       f"({family.settings[0]}..{family.settings[-1]}), not a {OPTION_NOUNS[option]}")
    return spec, family.choose(value)


def file_size(weights_id: str, kind: str = CODEC) -> int:
    """Bytes of an installed weights file (the size budget counts these; 0 for a coder without learned parts)."""
    entry = manifest_entry(weights_id, kind)
    return (weights_folder() / entry["file"]).stat().st_size if "file" in entry else 0


class LazyTensors(Mapping[str, np.ndarray]):
    """Tensors by name, each read (by ``read``) on first use, then kept. A decode needs one level's context tables
    of the eight in wavelet-v2's 6.3 MB file: reading all of them took 7 ms of a 0.25 s ``fcz decode``."""

    def __init__(self, names: Iterable[str], read: Callable[[str], np.ndarray]) -> None:
        self._names = dict.fromkeys(names)   # an ordered set
        self._read = functools.cache(read)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        return self._read(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _verified_path(listed: dict) -> Path:
    """A file in weights/ that the manifest lists as ``{"file": ..., "sha256": ...}``, once its bytes are checked."""
    path = weights_folder() / listed["file"]
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    if digest != listed["sha256"]:
        raise FczError(f"weights file {listed['file']} is damaged: SHA-256 {digest[:12]}... "
                       f"does not match the manifest's {listed['sha256'][:12]}...")
    return path


def _verified_file(listed: dict) -> bytes:
    """The checked bytes of a file in weights/ that the manifest lists (``_verified_path``)."""
    return _verified_path(listed).read_bytes()


@functools.lru_cache(maxsize=8)
def _verified_tensors(weights_id: str, kind: str = CODEC) -> Mapping[str, np.ndarray]:
    entry = manifest_entry(weights_id, kind)
    if "file" not in entry:
        return {}   # no file: no learned parts
    tensors = safe_open(str(_verified_path(entry)), framework="numpy")
    return LazyTensors(tensors.keys(), tensors.get_tensor)


def weights_tensors(weights_id: str) -> dict[str, np.ndarray]:
    """Every tensor of installed codec weights by name, checked against the manifest's SHA-256 (for training
    code that starts from shipped weights: train_postfilter.py)."""
    return dict(_verified_tensors(weights_id))


@functools.lru_cache(maxsize=8)
def load_spec(weights_id: str) -> WeightsSpec:
    """What installed weights promise (checked against their SHA-256), without their network: once per id, so
    that the family's models of the tables (``Family.entropy_model``) are made once too."""
    entry = manifest_entry(weights_id)
    tensors = _verified_tensors(weights_id)
    tables = LazyTensors((name[len(ENTROPY_PREFIX):] for name in tensors if name.startswith(ENTROPY_PREFIX)),
                         lambda name: tensors[ENTROPY_PREFIX + name])
    return WeightsSpec(weights_id, entry["stride"], entry["channels"], family_class(entry["family"]).from_entry(entry),
                       tables)


@functools.lru_cache(maxsize=4)
def load_weights(weights_id: str, device: str = "auto") -> Weights:
    """Load (once per id and device) verified weights, ready to run: ``device`` auto, cpu or cuda (the wavelet
    family runs on the CPU without torch unless cuda is asked for; the networks take auto as cuda where there is
    one)."""
    spec = load_spec(weights_id)
    tensors = _verified_tensors(weights_id)
    arrays = {name: tensors[name] for name in tensors if not name.startswith(ENTROPY_PREFIX)}
    model, transform = spec.family.load(manifest_entry(weights_id), arrays, _verified_file, device)
    return Weights(**vars(spec), model=model, transform=transform)


def default_restore_id(condition: str | None = None) -> str:
    """The restoration network ``fcz restore`` uses for ``condition``: the most specialised installed one.

    An entry's ``serves`` lists the conditions it was trained for (absent: all it codes); a network
    fine-tuned for one task alone then takes that task over from the general one. Ties: the first.
    None: the first installed network.
    """
    entries = _entries(RESTORE)
    if not entries:
        raise FczError("no restoration weights are installed; install the facecodec release that ships them")
    if condition is None:
        return entries[0]["id"]
    serving = [e for e in entries if condition in served(e)]
    if not serving:
        raise FczError(f"no installed restoration weights serve {condition}")
    return min(serving, key=lambda e: len(served(e)))["id"]  # min keeps the first of equals


def served(entry: dict) -> list[str]:
    """The conditions a restoration entry was trained for: its ``serves``, or else every condition it codes."""
    return entry.get("serves", entry["conditions"])


@functools.lru_cache(maxsize=2)
def load_restore_weights(weights_id: str, device: str = "cpu") -> RestoreWeights:
    """Load (once per id and device) a verified restoration network."""
    import torch

    from facecodec.models import build_model
    from facecodec.models.networks import loaded

    entry = manifest_entry(weights_id, RESTORE)
    model = loaded(build_model(entry["architecture"], **entry["model"]), _verified_tensors(weights_id, RESTORE), device)
    return RestoreWeights(weights_id, tuple(entry["conditions"]), model, torch.device(device))


def clear_caches() -> None:
    """Forget loaded weights (tests that forge the manifest call this)."""
    manifest.cache_clear()
    _verified_tensors.cache_clear()
    load_spec.cache_clear()
    load_weights.cache_clear()
    load_restore_weights.cache_clear()
