"""The wavelet family (facecodec.models.wavelet_transform): a quantization step per subband and quality,
context-adaptive coding of the integer planes, large images as a grid of independently coded tiles."""
from __future__ import annotations

from typing import Any

import numpy as np

from facecodec.bitstream import FczError, FczHeader
from facecodec.bitstream.container import OVERLAP_VERSION, TILED_LAYOUTS
from facecodec.bitstream.entropy import SYMBOL_BITS
from facecodec.bitstream.tiles import (MAX_TILE, MIN_TILE, TILE_ALIGNMENT, coded_box, join_tiles, kept_box,
                                       split_tiles, tile_grid, tile_header, tiled_header)
from facecodec.bitstream.contexts import scheme as context_scheme
from facecodec.families.base import Family, integer


class WaveletFamily(Family):
    """Quality levels of the fixed wavelet transform (facecodec.models.wavelet_transform): a step per subband and quality.

    The features are ``3 x H x W`` wavelet coefficient planes (stride 1, no padding); each
    becomes a signed integer, ``floor(|y| / step + rounding offset)`` with its sign (plain
    rounding on the LL band), and the payload codes them with context-adaptive tables
    (facecodec.bitstream.wavelet_payload). The header stores only the quality; ``bits`` is 6, the
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
    (facecodec.bitstream.contexts.Scheme).
    """

    name, option = "wavelet", "quality"
    efforts, default_effort = range(0, 2), 1   # 1: rate-distortion optimised quantization (facecodec.rdoq)
    max_reduce = 4                             # the transform's levels: down to the LL band, 1/16 of the size
    # Images larger than the tile side are coded as a grid of tiles (format 8: overlapping), so memory follows
    # the tile (about 140 bytes a pixel: 150 MB), not the image. 1024 keeps every face photo of the usual
    # datasets one tile (their bytes as before tiles existed) and tile seams rare; a multiple of 16 (2^4
    # levels), so reduced tiles line up (bitstream/tiles.py).
    DEFAULT_TILE = 1024
    # Each tile codes this many pixels of its neighbours above and to the left too (format 8, bitstream/tiles.py),
    # so no seam lies at a tile's edge: 1.5-3 % more pixels coded in a large photo's tiles of 1024.
    tile_overlap = 16
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
        from facecodec.bitstream.contexts import ContextModel

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
        from facecodec.bitstream.wavelet_payload import encode_planes

        return encode_planes(symbols, model, header.mode, resolution_order=header.version >= 3)

    def choose_tile(self, tile):
        if tile is None:
            return self.DEFAULT_TILE
        tile = integer("tile", tile)
        if not (MIN_TILE <= tile <= MAX_TILE and tile % TILE_ALIGNMENT == 0):
            raise FczError(f"tile must be a multiple of {TILE_ALIGNMENT} between {MIN_TILE} and {MAX_TILE}, got {tile}")
        return tile

    def tile_boxes(self, width, height, tile):
        return tile_grid(width, height, tile) if max(width, height) > tile else None

    def tiles(self, header, payload):
        if header.version not in TILED_LAYOUTS:
            return super().tiles(header, payload)
        width, height = header.width, header.height
        _, overlap, boxes, payloads = split_tiles(payload, width, height, header.version == OVERLAP_VERSION)
        coded = [coded_box(box, overlap) for box in boxes]
        return [(part_box, kept_box(box, overlap, width, height), tile_header(header, part_box), part)
                for box, part_box, part in zip(boxes, coded, payloads)]

    def join_tiles(self, headers, payloads, width, height, tile):
        overlap = self.tile_overlap
        return tiled_header(headers[0], width, height, overlap > 0), join_tiles(tile, payloads, overlap)

    def check_payload(self, payload, model, header):
        from facecodec.bitstream.wavelet_payload import check_payload_length as check_wavelet_payload

        for _, _, part, part_payload in self.tiles(header, payload):
            check_wavelet_payload(part_payload, model, part.latent_shape[1:], part.mode)

    def entropy_decode(self, payload, model, header, reduce=0):
        from facecodec.bitstream.wavelet_payload import decode_planes

        # Format 3 is resolution-ordered: a reduced decode stops after the coarse levels. A format-2
        # payload holds each plane whole, so it is decoded whole and only the synthesis is reduced.
        progressive = header.version >= 3
        return decode_planes(payload, model, header.latent_shape[1:], header.mode, resolution_order=progressive,
                             reduce=reduce if progressive else 0)

    def load(self, entry, arrays, read, device):
        from facecodec.models import wavelet_runtime

        graph = entry.get("postfilter_graph")
        runtime = wavelet_runtime.load(entry.get("model", {}), arrays, read(graph) if graph else None, device)
        return runtime, runtime

    def _steps(self, model, setting: int) -> np.ndarray:
        from facecodec.models import wavelet_transform as wavelet

        return wavelet.steps_at(model.steps, self.level(setting))

    def quantize(self, model, y, setting, effort=0, tables=None):
        from facecodec.models import wavelet_transform as wavelet

        steps, nearest = self._steps(model, setting), self.nearest_level(setting) - 1
        if effort == 0:
            offset = float(model.rounding_offset[nearest])
            symbols = np.stack([wavelet.quantize(planes, steps, offset) for planes in y])
        else:
            from facecodec import rdoq

            if tables is None:
                raise ValueError("an encoder search (effort > 0) needs the weights' entropy tables")
            context, offset = self.entropy_model(tables, setting), float(model.recon_offset[nearest])
            symbols = np.stack([rdoq.refine(planes / wavelet.step_planes(*planes.shape[1:], steps), context, offset)
                                for planes in y])
        fields = {"quality": setting, "bits": SYMBOL_BITS, "channel_ranges": ()}
        return symbols, [fields] * len(symbols)

    def dequantize(self, model, symbols, header):
        from facecodec.models import wavelet_transform as wavelet

        offset = float(model.recon_offset[self.nearest_level(header.quality) - 1])
        y = wavelet.dequantize(symbols, self._steps(model, header.quality), offset)
        return model.with_quality(y[None], self.level(header.quality))
