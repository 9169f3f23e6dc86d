"""A model family's quantization: its settings, and features to integer symbols and back.

A model family's analysis transform ``g_a`` turns an image into real-valued
features; its family object (a :class:`Family`, chosen once when the weights
load) turns those into the integer symbols that the range coder codes, plus the
header fields a decoder needs to undo it, and back again::

    features --quantize(model, y, setting)--> symbols + header fields --dequantize(model, symbols, header)--> features

Everything that differs between families lives behind this interface: which
option picks a setting (``quality`` or ``bits``), its range and default, which of
the weights' entropy tables codes a setting, how a header says which setting it
used, how symbols become payload bytes and back (``entropy_encode`` /
``entropy_decode``: per-channel fixed tables by default, context-adaptive for the
wavelet family), and whether a large image is coded in tiles. The codec, the
CLI, the Pillow plugin, export, the benchmarks and the training scripts ask this
interface; only the subclasses (one module each in this package) know how a
family quantizes. A new family is one more subclass and one more entry in
``facecodec.families.FAMILIES``.

The manifest (``weights/manifest.json``) names each weights file's family in
``family`` and stores ``settings`` ([first, last]) and ``default_setting``.

Importing this module does not import torch (``fcz info`` and header checks use
it without running a network); the methods that touch tensors import it when called, and the
wavelet family never does for its default weights.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np

from facecodec.bitstream import FczError, FczHeader, decode_symbols, encode_symbols
from facecodec.bitstream.entropy import check_payload_length
from facecodec.bitstream.tiles import Box

if TYPE_CHECKING:
    import torch

    from facecodec.models.transform import Transform

# The API's setting keywords (and CLI options), as users read them in messages.
OPTION_NOUNS = {"quality": "quality level", "bits": "bit depth"}


def integer(name: str, value: Any) -> int:
    """``value`` as an int, or TypeError naming ``name`` (a bool, a float or a string is no setting)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


class Family(ABC):
    """How one model family quantizes features; built from the manifest when weights load."""

    name: ClassVar[str]    # the manifest's ``family`` value
    option: ClassVar[str]  # the keyword / command-line option that picks a setting
    efforts: ClassVar[range] = range(0, 1)  # encoder search levels (``--effort``); 0: the plain quantizer
    default_effort: ClassVar[int] = 0
    max_reduce: ClassVar[int] = 0           # how many times a decoder can halve the size (``fcz decode --scale``)
    lossless: ClassVar[bool] = False        # decodes to exactly the pixels encoded (``encode(lossless=True)``)
    keeps_jpeg_files: ClassVar[bool] = False  # codes a JPEG input's own coefficients, not pixels (jpeg_file.py)
    rebuilds_jpeg: ClassVar[bool] = False     # codes pixels as a JPEG rebuilt from them and a residual (jpeg_rebuild.py)
    tile_overlap: ClassVar[int] = 0           # pixels each tile also codes of its neighbours (``tile_boxes``; format 8)

    def __init__(self, settings: range, default: int) -> None:
        if default not in settings:
            raise ValueError(f"default setting {default} is not among {settings}")
        self.settings, self.default = settings, default

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> Family:
        first, last = entry["settings"]
        return cls(range(first, last + 1), entry["default_setting"])

    @classmethod
    def for_model(cls, model: torch.nn.Module, default: int | None = None) -> Family:
        """The codec of a freshly trained ``model`` (export builds its manifest entry from it)."""
        settings = cls.settings_for(model)
        return cls(settings, cls.default_for(settings) if default is None else default)

    @classmethod
    @abstractmethod
    def settings_for(cls, model: torch.nn.Module) -> range:
        """Every setting ``model`` supports."""

    @classmethod
    def default_for(cls, settings: range) -> int:
        """The setting used when none is asked for: the middle one, unless a family knows better."""
        return settings[len(settings) // 2]

    def manifest_fields(self) -> dict[str, Any]:
        """What ``from_entry`` reads back: written into the manifest by export."""
        return {"family": self.name, "settings": [self.settings[0], self.settings[-1]],
                "default_setting": self.default}

    @property
    def noun(self) -> str:
        return OPTION_NOUNS[self.option]

    def load(self, entry: dict[str, Any], arrays: dict[str, np.ndarray], read: Callable[[dict], bytes],
             device: str) -> tuple[Any, Transform]:
        """The weights' model (what ``quantize`` and ``dequantize`` read) and the transform the codec runs
        (facecodec.models.transform), from the manifest ``entry``, the weights file's arrays (no ``entropy.*``) and
        ``read`` (a file the entry names, ``{"file", "sha256"}``, verified); ``device``: auto, cpu or cuda.

        By default a torch network on the device (facecodec.models.networks): the model and the transform's network.
        """
        from facecodec.devices import resolve_device

        device = resolve_device(device)   # first: FczError where torch is not installed
        from facecodec.models import build_model
        from facecodec.models.networks import TorchTransform, loaded

        network = loaded(build_model(entry["architecture"], channels=entry["channels"], **entry.get("model", {})),
                         arrays, device)
        return network, TorchTransform(network, device)

    def choose(self, setting: int | None) -> int:
        """A user's setting (None: the default) -> the setting, or FczError if these weights don't have it."""
        if setting is None:
            return self.default
        setting = integer(self.option, setting)
        if setting not in self.settings:
            raise FczError(f"{self.option} must be between {self.settings[0]} and {self.settings[-1]}, got {setting}")
        return setting

    def sweep(self) -> list[int]:
        """Settings that trace the whole rate-distortion curve, for benchmarks: all of them, unless there are many."""
        return list(self.settings)

    def choose_effort(self, effort: int | None) -> int:
        """A user's encoder effort (None: the family's default) -> the effort, or FczError if the family lacks it."""
        if effort is None:
            return self.default_effort
        effort = integer("effort", effort)
        if effort not in self.efforts:
            if len(self.efforts) == 1:
                raise FczError(f"effort must be {self.efforts[0]} for these weights (they have no encoder search), "
                               f"got {effort}")
            raise FczError(f"effort must be between {self.efforts[0]} and {self.efforts[-1]}, got {effort}")
        return effort

    def check_reduce(self, reduce: int, weights_id: str) -> int:
        """A decode's ``reduce`` (output 1 / 2^reduce of the size), or FczError if these weights cannot."""
        reduce = integer("reduce", reduce)
        if reduce < 0:
            raise FczError(f"reduce must be 0 or more, got {reduce}")
        if reduce > self.max_reduce:
            if not self.max_reduce:
                raise FczError(f"weights {weights_id!r} decode only at full size (no --scale)")
            raise FczError(f"weights {weights_id!r} decode down to 1/{2 ** self.max_reduce} of the size, "
                           f"not 1/{2 ** reduce}")
        return reduce

    def describe(self, setting: int) -> str:
        """A setting for people: "quality 5", "6 bits"."""
        return f"{self.option} {setting}"

    def table_name(self, setting: int) -> str:
        """Name of the weights' entropy table for ``setting`` (stored as ``entropy.<name>``)."""
        return f"{self.option}{setting}"

    def entropy_model(self, tables: Mapping[str, np.ndarray], setting: int) -> Any:
        """What codes ``setting``'s payload, from the weights' entropy tensors (``entropy.*``, prefix removed).

        By default the one table ``table_name(setting)``: integer counts, a row per channel.
        """
        return tables[self.table_name(setting)]

    def entropy_encode(self, symbols: np.ndarray, model: Any, header: FczHeader) -> bytes:
        """Symbols ``C x h x w`` of one file -> payload bytes (default: channel by channel, fixed tables)."""
        return encode_symbols(symbols, model)

    def check_payload(self, payload: bytes, model: Any, header: FczHeader) -> None:
        """FczError if ``payload`` is too short to hold the symbols ``header`` claims (before any decoding)."""
        check_payload_length(payload, model, header.latent_shape[1:])

    def choose_tile(self, tile: int | None) -> int | None:
        """A user's coding tile side (None: the family's default) -> the side, or FczError if the family codes an
        image in one payload (the networks bound their memory by running in tiles instead: facecodec.models.tiling)."""
        if tile is not None:
            raise FczError(f"the {self.name} family codes an image in one payload: it takes no tile size")
        return None

    def tile_boxes(self, width: int, height: int, tile: int | None) -> list[Box] | None:
        """The tiles (side ``tile``, from ``choose_tile``) an image of this size is coded in, each on its own
        (formats 4 and 8), or None: one payload for the whole image. None by default."""
        return None

    def tiles(self, header: FczHeader, payload: bytes) -> list[tuple[Box, Box, FczHeader, bytes]]:
        """A file's independently coded parts: each one's box in the image, the box of the image its decode gives (in
        overlapping tiles, less than it codes), header and payload (as an image of its own, untiled); FczError if a
        tile table is corrupt. By default one part: the whole file."""
        whole = (0, 0, header.width, header.height)
        return [(whole, whole, header, payload)]

    def join_tiles(self, headers: list[FczHeader], payloads: list[bytes], width: int, height: int, tile: int
                   ) -> tuple[FczHeader, bytes]:
        """The tiles of ``tile_boxes`` coded each as an image of its own -> the whole image's header and payload."""
        raise NotImplementedError(f"the {self.name} family codes an image in one payload, never in tiles")

    def entropy_decode(self, payload: bytes, model: Any, header: FczHeader, reduce: int = 0) -> np.ndarray:
        """Payload bytes of one untiled part (``tiles``) -> symbols ``C x h x w`` (int32); FczError if they do not decode.

        ``reduce`` > 0 (families with ``max_reduce``): only the symbols a 1 / 2^reduce image needs
        must be right; a family may leave the others zero.
        """
        return decode_symbols(payload, model, header.latent_shape[1:])

    @abstractmethod
    def alphabet(self, setting: int) -> int:
        """Number of distinct symbols at ``setting``: symbols are ``0 .. alphabet - 1``."""

    @abstractmethod
    def setting_of(self, header: FczHeader) -> int:
        """The setting a header says its file was coded with (not yet checked against ``settings``)."""

    def symbol_bits(self, setting: int) -> int:
        """The header's quantizer bits at ``setting``: the bits ``alphabet`` symbols take."""
        return self.alphabet(setting).bit_length() - 1

    def check_header(self, header: FczHeader, weights_id: str) -> int:
        """The header's setting, or FczError if it is not one these weights can decode."""
        setting = self.setting_of(header)
        if setting not in self.settings or header.bits != self.symbol_bits(setting):
            raise FczError(f"corrupt file: weights {weights_id!r} have no quantizer setting "
                           f"{self.describe(setting)}")
        return setting

    @abstractmethod
    def quantize(self, model: Any, y: np.ndarray | torch.Tensor, setting: int, effort: int = 0,
                 tables: Mapping[str, np.ndarray] | None = None) -> tuple[np.ndarray, list[dict]]:
        """Features ``N x C x h x w`` -> (int32 symbols ``N x C x h x w``, per image the header fields that undo it).
        ``model``: ``load``'s (the trainers pass their network).

        ``effort`` (one of ``efforts``) above 0 searches for symbols that code smaller for their
        distortion, which needs the weights' entropy tensors ``tables`` (``entropy.*``, prefix removed).
        """

    @abstractmethod
    def dequantize(self, model: Any, symbols: np.ndarray, header: FczHeader) -> np.ndarray:
        """Symbols ``C x h x w`` of one file -> features ``1 x C x h x w`` (float32), what the transform's
        ``synthesise`` takes."""


