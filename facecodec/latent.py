"""The latent codec of a model family: its settings, and features to integer symbols and back.

A model family's analysis transform ``g_a`` turns an image into real-valued
features; its latent codec turns those into the integer symbols that the range
coder codes, plus the header fields a decoder needs to undo it, and back again::

    features --quantize(model, y, setting)--> symbols + header fields --dequantize(model, symbols, header)--> features

Everything that differs between families lives here: which option picks a
setting (``quality`` or ``bits``), its range and default, which of the weights'
entropy tables codes a setting, how a header says which setting it used, and how
symbols become payload bytes and back (``entropy_encode`` / ``entropy_decode``:
per-channel fixed tables by default, context-adaptive for the wavelet family).
The codec, the CLI, the Pillow plugin, export, the benchmarks and the training
scripts ask this interface; only the classes below know how a family quantizes.
A new family is one more subclass and one more entry in ``LATENT_CODECS``.

The manifest (``weights/manifest.json``) names each weights file's family in
``quantizer`` and stores ``settings`` ([first, last]) and ``default_setting``.

Importing this module does not import torch (``fcz info`` and header checks use
it without running a network); the methods that touch tensors import it when called.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from facecodec.bitstream import FczError, FczHeader, decode_symbols, encode_symbols
from facecodec.bitstream.container import TILED_VERSION
from facecodec.bitstream.entropy import check_payload_length
from facecodec.bitstream.tiles import Box, join_tiles, split_tiles, tile_grid, tile_header, tiled_header
from facecodec.bitstream.wavelet import scheme as context_scheme

if TYPE_CHECKING:
    import torch

SYMBOL_BITS = 6  # the gained family's symbols: 6-bit integers

# The API's setting keywords (and CLI options), as users read them in messages.
OPTION_NOUNS = {"quality": "quality level", "bits": "bit depth"}


def _integer(name: str, value: Any) -> int:
    """``value`` as an int, or TypeError naming ``name`` (a bool, a float or a string is no setting)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


class LatentCodec(ABC):
    """How one family quantizes features; built from the manifest when weights load."""

    name: ClassVar[str]    # the manifest's ``quantizer`` value
    option: ClassVar[str]  # the keyword / command-line option that picks a setting
    efforts: ClassVar[range] = range(0, 1)  # encoder search levels (``--effort``); 0: the plain quantizer
    default_effort: ClassVar[int] = 0
    max_reduce: ClassVar[int] = 0           # how many times a decoder can halve the size (``fcz decode --scale``)

    def __init__(self, settings: range, default: int) -> None:
        if default not in settings:
            raise ValueError(f"default setting {default} is not among {settings}")
        self.settings, self.default = settings, default

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> LatentCodec:
        first, last = entry["settings"]
        return cls(range(first, last + 1), entry["default_setting"])

    @classmethod
    def for_model(cls, model: torch.nn.Module, default: int | None = None) -> LatentCodec:
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
        return {"quantizer": self.name, "settings": [self.settings[0], self.settings[-1]],
                "default_setting": self.default}

    @property
    def noun(self) -> str:
        return OPTION_NOUNS[self.option]

    def choose(self, setting: int | None) -> int:
        """A user's setting (None: the default) -> the setting, or FczError if these weights don't have it."""
        if setting is None:
            return self.default
        setting = _integer(self.option, setting)
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
        effort = _integer("effort", effort)
        if effort not in self.efforts:
            if len(self.efforts) == 1:
                raise FczError(f"effort must be {self.efforts[0]} for these weights (they have no encoder search), "
                               f"got {effort}")
            raise FczError(f"effort must be between {self.efforts[0]} and {self.efforts[-1]}, got {effort}")
        return effort

    def check_reduce(self, reduce: int, weights_id: str) -> int:
        """A decode's ``reduce`` (output 1 / 2^reduce of the size), or FczError if these weights cannot."""
        reduce = _integer("reduce", reduce)
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

    def entropy_model(self, tables: dict[str, np.ndarray], setting: int) -> Any:
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

    def tile_boxes(self, width: int, height: int) -> list[Box] | None:
        """The tiles an image of this size is coded in, each on its own (format 4), or None: one payload for the
        whole image. None by default: the networks bound their memory by running in tiles (facecodec.tiling),
        with one payload for the image."""
        return None

    def tiles(self, header: FczHeader, payload: bytes) -> list[tuple[Box, FczHeader, bytes]]:
        """A file's independently coded parts: each one's box in the image, header and payload (as an image of
        its own, untiled); FczError if a tile table is corrupt. By default one part: the whole file."""
        return [((0, 0, header.width, header.height), header, payload)]

    def join_tiles(self, headers: list[FczHeader], payloads: list[bytes], width: int, height: int
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

    def check_header(self, header: FczHeader, weights_id: str) -> int:
        """The header's setting, or FczError if it is not one these weights can decode."""
        setting = self.setting_of(header)
        if setting not in self.settings or header.bits != self.alphabet(setting).bit_length() - 1:
            raise FczError(f"corrupt file: weights {weights_id!r} have no quantizer setting "
                           f"{self.describe(setting)}")
        return setting

    @abstractmethod
    def quantize(self, model: torch.nn.Module, y: torch.Tensor, setting: int, effort: int = 0,
                 tables: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, list[dict]]:
        """Features ``N x C x h x w`` -> (int32 symbols ``N x C x h x w``, per image the header fields that undo it).

        ``effort`` (one of ``efforts``) above 0 searches for symbols that code smaller for their
        distortion, which needs the weights' entropy tensors ``tables`` (``entropy.*``, prefix removed).
        """

    @abstractmethod
    def dequantize(self, model: torch.nn.Module, symbols: np.ndarray, header: FczHeader) -> torch.Tensor:
        """Symbols ``C x h x w`` of one file -> features ``1 x C x h x w`` on the model's device."""


class GainedCodec(LatentCodec):
    """Quality levels of one network (facecodec.models.gained): features x gain[level], rounded to 6 bits.

    The header stores only the level (``quality``); ``bits`` is always 6 and no ranges follow.
    """

    name, option = "gained", "quality"

    @classmethod
    def settings_for(cls, model):
        return range(1, model.levels + 1)

    def alphabet(self, setting: int) -> int:
        return 2**SYMBOL_BITS

    def setting_of(self, header: FczHeader) -> int:
        return header.quality

    def quantize(self, model, y, setting, effort=0, tables=None):
        symbols = model.symbols(y, setting - 1).cpu().numpy()
        fields = {"quality": setting, "bits": self.alphabet(setting).bit_length() - 1, "channel_ranges": ()}
        return symbols, [fields] * len(symbols)

    def dequantize(self, model, symbols, header):
        import torch

        q = torch.from_numpy(symbols)[None].to(next(model.parameters()).device)
        return model.features(q, header.quality - 1)


class RangesCodec(LatentCodec):
    """The seed's per-image quantizer (facecodec.quantizer): each channel's [min, max] onto ``2**bits`` levels.

    The header stores the bit depth and every channel's range; its quality byte is 0.
    """

    name, option = "ranges", "bits"

    @classmethod
    def settings_for(cls, model):
        from facecodec.quantizer import MAX_BITS, MIN_BITS

        return range(MIN_BITS, MAX_BITS + 1)

    @classmethod
    def default_for(cls, settings):
        return 6  # the seed project's depth: quantizing to 6 bits cost nothing measurable (README, series)

    def describe(self, setting: int) -> str:
        return f"{setting} bits"

    def alphabet(self, setting: int) -> int:
        return 2**setting

    def setting_of(self, header: FczHeader) -> int:
        # A quality level on a ranges file is no setting of this family: report it as bits 0, never valid.
        return 0 if header.quality else header.bits

    def quantize(self, model, y, setting, effort=0, tables=None):
        from facecodec import quantizer

        lo, hi = quantizer.channel_ranges(y)
        symbols = quantizer.quantize(y, lo, hi, setting).cpu().numpy().astype(np.int32)
        return symbols, [
            {"quality": 0, "bits": setting, "channel_ranges": tuple(zip(l, h))}
            for l, h in zip(lo.tolist(), hi.tolist())]

    def dequantize(self, model, symbols, header):
        import torch

        from facecodec import quantizer

        device = next(model.parameters()).device
        q = torch.from_numpy(symbols)[None].to(device)
        lo, hi = (torch.tensor(r, dtype=torch.float32)[None].to(device) for r in zip(*header.channel_ranges))
        return quantizer.dequantize(q, lo, hi, header.bits)


class WaveletCodec(LatentCodec):
    """Quality levels of the fixed wavelet transform (facecodec.models.wavelet): a step per subband and quality.

    The features are ``3 x H x W`` wavelet coefficient planes (stride 1, no padding); each
    becomes a signed integer, ``floor(|y| / step + rounding offset)`` with its sign (plain
    rounding on the LL band), and the payload codes them with context-adaptive tables
    (facecodec.bitstream.wavelet). The header stores only the quality; ``bits`` is 6, the
    alphabet of the coded letters (63 of them values -31..31, one an escape to larger values).
    Dequantized features carry the quality's level as a fourth plane, for the decoder's post-filter.

    The weights hold step tables, offsets and context tables for ``levels`` trained levels. With
    ``continuous`` (manifest ``model.continuous_quality``) a quality 1..100 stands for level
    ``quality / 10`` (quality 50 = level 5): steps interpolated log-linearly between the levels'
    tables (extended past both ends), the offsets and context tables of the nearest level. Below
    quality 10 the level runs linearly from ``lowest_level`` at quality 1 (manifest
    ``model.lowest_level``; 0.1, the plain ``quality / 10``, for weights that don't say) to 1 at 10,
    so weights can reach further down than the first trained level.
    Otherwise the quality is the level itself, 1..``levels``.

    ``scheme`` (manifest ``model.context_scheme``, 1 if absent): the payload's context scheme
    (facecodec.bitstream.wavelet.Scheme).
    """

    name, option = "wavelet", "quality"
    efforts, default_effort = range(0, 2), 1   # 1: rate-distortion optimised quantization (facecodec.rdoq)
    max_reduce = 4                             # the transform's levels: down to the LL band, 1/16 of the size
    # Images larger than TILE a side are coded as a grid of TILE x TILE tiles (format 4), so memory follows
    # the tile (about 140 bytes a pixel: 150 MB), not the image. 1024 keeps every face photo of the usual
    # datasets one tile (their bytes as before tiles existed) and tile seams rare; a multiple of 16 (2^4
    # levels), so reduced tiles line up (bitstream/tiles.py).
    TILE = 1024
    QUALITY_PER_LEVEL = 10                     # continuous quality: quality 10 k is level k
    CONTINUOUS = range(1, 101)

    def __init__(self, settings: range, default: int, levels: int | None = None, continuous: bool = False,
                 lowest_level: float | None = None, scheme: int = 1) -> None:
        super().__init__(settings, default)
        self.levels = levels if levels is not None else len(settings)
        self.continuous = continuous
        self.lowest_level = 1 / self.QUALITY_PER_LEVEL if lowest_level is None else lowest_level
        self.scheme = context_scheme(scheme)
        self._context_models: dict[str, tuple[dict, Any]] = {}   # table name -> (tables, ContextModel)

    @classmethod
    def from_entry(cls, entry):
        first, last = entry["settings"]
        options = entry.get("model", {})
        return cls(range(first, last + 1), entry["default_setting"], options.get("qualities"),
                   options.get("continuous_quality", False), options.get("lowest_level"),
                   options.get("context_scheme", 1))

    @classmethod
    def for_model(cls, model, default=None):
        settings = cls.settings_for(model)
        return cls(settings, cls.default_for(settings) if default is None else default, model.qualities,
                   model.continuous_quality, model.lowest_level, model.context_scheme)

    @classmethod
    def settings_for(cls, model):
        return cls.CONTINUOUS if model.continuous_quality else range(1, model.qualities + 1)

    @classmethod
    def default_for(cls, settings):
        # quality 50 is level 5, the default of the level-numbered wavelet weights
        return 5 * cls.QUALITY_PER_LEVEL if settings == cls.CONTINUOUS else super().default_for(settings)

    def sweep(self):
        if not self.continuous:
            return super().sweep()
        return [1, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 100]  # every trained level, and past both ends

    def level(self, setting: int) -> float:
        """The (fractional) level a quality stands for."""
        if not self.continuous:
            return float(setting)
        if setting >= self.QUALITY_PER_LEVEL:
            return setting / self.QUALITY_PER_LEVEL
        return self.lowest_level + (setting - 1) * (1 - self.lowest_level) / (self.QUALITY_PER_LEVEL - 1)

    def nearest_level(self, setting: int) -> int:
        """The trained level whose offsets, context tables and filter are used at ``setting``."""
        return min(max(int(np.floor(self.level(setting) + 0.5)), 1), self.levels)

    def alphabet(self, setting: int) -> int:
        return 2**SYMBOL_BITS

    def setting_of(self, header: FczHeader) -> int:
        return header.quality

    def entropy_model(self, tables, setting):
        from facecodec.bitstream.wavelet import ContextModel

        # One model per level and tables: it keeps its constriction tables and payload bound, which every
        # decode would otherwise build again (5 ms of a 150x150 face's 28).
        name = self.table_name(self.nearest_level(setting))
        cached = self._context_models.get(name)
        if cached is None or cached[0] is not tables:
            cached = self._context_models[name] = (tables, ContextModel(
                tables[name], tables[f"{name}.weights"], tables[f"{name}.thresholds"], self.scheme,
                tables.get(f"{name}.sign_weights"), tables.get(f"{name}.sign_thresholds")))
        return cached[1]

    def entropy_encode(self, symbols, model, header):
        from facecodec.bitstream.wavelet import encode_planes

        return encode_planes(symbols, model, header.mode, resolution_order=header.version >= 3)

    def tile_boxes(self, width, height):
        return tile_grid(width, height, self.TILE) if max(width, height) > self.TILE else None

    def tiles(self, header, payload):
        if header.version < TILED_VERSION:
            return super().tiles(header, payload)
        _, boxes, payloads = split_tiles(payload, header.width, header.height)
        return [(box, tile_header(header, box), part) for box, part in zip(boxes, payloads)]

    def join_tiles(self, headers, payloads, width, height):
        return tiled_header(headers[0], width, height), join_tiles(self.TILE, payloads)

    def check_payload(self, payload, model, header):
        from facecodec.bitstream.wavelet import check_payload_length as check_wavelet_payload

        for _, part, part_payload in self.tiles(header, payload):
            check_wavelet_payload(part_payload, model, part.latent_shape[1:], part.mode)

    def entropy_decode(self, payload, model, header, reduce=0):
        from facecodec.bitstream.wavelet import decode_planes

        # Format 3 is resolution-ordered: a reduced decode stops after the coarse levels. A format-2
        # payload holds each plane whole, so it is decoded whole and only the synthesis is reduced.
        progressive = header.version >= 3
        return decode_planes(payload, model, header.latent_shape[1:], header.mode, resolution_order=progressive,
                             reduce=reduce if progressive else 0)

    def _steps(self, model, setting: int) -> np.ndarray:
        from facecodec.models import wavelet

        return wavelet.steps_at(model.steps.cpu().numpy(), self.level(setting))

    def quantize(self, model, y, setting, effort=0, tables=None):
        from facecodec.models import wavelet

        steps, nearest = self._steps(model, setting), self.nearest_level(setting) - 1
        if effort == 0:
            offset = float(model.rounding_offset[nearest])
            symbols = np.stack([wavelet.quantize(planes, steps, offset) for planes in y.cpu().numpy()])
        else:
            from facecodec import rdoq

            if tables is None:
                raise ValueError("an encoder search (effort > 0) needs the weights' entropy tables")
            context, offset = self.entropy_model(tables, setting), float(model.recon_offset[nearest])
            symbols = np.stack([rdoq.refine(planes / wavelet.step_planes(*planes.shape[1:], steps), context, offset)
                                for planes in y.cpu().numpy()])
        fields = {"quality": setting, "bits": SYMBOL_BITS, "channel_ranges": ()}
        return symbols, [fields] * len(symbols)

    def dequantize(self, model, symbols, header):
        import torch

        from facecodec.models import wavelet

        offset = float(model.recon_offset[self.nearest_level(header.quality) - 1])
        y = wavelet.dequantize(symbols, self._steps(model, header.quality), offset)
        return model.with_quality(torch.from_numpy(y)[None].to(model.steps.device), self.level(header.quality))


LATENT_CODECS: dict[str, type[LatentCodec]] = {codec.name: codec for codec in (GainedCodec, RangesCodec, WaveletCodec)}


def codec_class(name: str) -> type[LatentCodec]:
    """The family named by a manifest's or a model's ``quantizer``."""
    try:
        return LATENT_CODECS[name]
    except KeyError:
        raise FczError(f"unknown quantizer {name!r}; this facecodec knows {', '.join(LATENT_CODECS)}") from None
