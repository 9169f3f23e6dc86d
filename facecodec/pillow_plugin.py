"""Pillow file plugin: ``Image.open("face.fcz")`` and ``image.save("face.fcz")`` once facecodec is imported.

Opening reads only the header (size and mode come from it); pixels are decoded
on first access, like Pillow's own formats. Saving accepts ``quality=N`` (the
default model's levels), or ``bits=N`` for the seed's fixed-bit-depth path, and
``effort=N`` (the encoder's search, as ``fcz encode --effort``).
"""
from __future__ import annotations

from io import BytesIO
from typing import IO

from PIL import Image, ImageFile, UnidentifiedImageError

from facecodec.bitstream import FczError
from facecodec.bitstream.container import MAGIC
from facecodec.reading import check_decodable

FORMAT = "FCZ"


class FczImageError(FczError, UnidentifiedImageError):
    """A broken .fcz opened through Pillow: still Pillow's "cannot identify" error, but with facecodec's reason.

    Pillow turns a plugin's SyntaxError into a bare "cannot identify image file"; raising this
    instead keeps the message, and code that catches either library's exception still catches it.
    """


def _accept(prefix: bytes) -> bool:
    return prefix.startswith(MAGIC)


class FczImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "facecodec learned face image"

    def _open(self) -> None:
        self._fcz_data = self.fp.read()
        try:
            header, _, spec, _ = check_decodable(self._fcz_data)
        except FczError as exc:  # only files with .fcz's magic get here: it is ours, and broken
            raise FczImageError(str(exc)) from None
        self._size = (header.width, header.height)
        self._mode = header.mode
        self.info[spec.family.option] = spec.family.setting_of(header)  # "quality" or "bits", as save() takes it
        self.info["weights_id"] = header.weights_id
        self.tile = []

    def load(self):
        if self._fcz_data is not None:
            from facecodec.codec import decode  # torch, only once pixels are wanted

            decoded = decode(self._fcz_data)
            self._fcz_data = None
            self.fp = BytesIO(decoded.tobytes())
            self.tile = [ImageFile._Tile("raw", (0, 0, *self.size), 0, self.mode)]
        return super().load()


def _save(image: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from facecodec.codec import encode

    info = image.encoderinfo
    fp.write(encode(image, quality=info.get("quality"), bits=info.get("bits"), effort=info.get("effort")))


Image.register_open(FORMAT, FczImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, ".fcz")
