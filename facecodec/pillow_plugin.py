"""Pillow file plugin: ``Image.open("face.fcz")`` and ``image.save("face.fcz")`` once facecodec is imported.

Opening reads only the header (size and mode come from it); pixels are decoded
on first access, like Pillow's own formats. Saving accepts ``quality=N`` (the
default model's levels), or ``bits=N`` for the seed's fixed-bit-depth path.
"""
from __future__ import annotations

from io import BytesIO
from typing import IO

from PIL import Image, ImageFile

from facecodec.bitstream.container import MAGIC
from facecodec.bitstream.errors import FczError

FORMAT = "FCZ"


def _accept(prefix: bytes) -> bool:
    return prefix.startswith(MAGIC)


class FczImageFile(ImageFile.ImageFile):
    format = FORMAT
    format_description = "facecodec learned face image"

    def _open(self) -> None:
        from facecodec.codec import read_header

        self._fcz_data = self.fp.read()
        try:
            header = read_header(self._fcz_data)
        except FczError as exc:
            raise SyntaxError(str(exc)) from None  # Pillow's signal for "not this format / broken"
        self._size = (header.width, header.height)
        self._mode = header.mode
        self.info["bits"] = header.bits
        if header.quality:
            self.info["quality"] = header.quality
        self.info["weights_id"] = header.weights_id
        self.tile = []

    def load(self):
        if self._fcz_data is not None:
            from facecodec.codec import decode

            decoded = decode(self._fcz_data)
            self._fcz_data = None
            self.fp = BytesIO(decoded.tobytes())
            self.tile = [ImageFile._Tile("raw", (0, 0, *self.size), 0, self.mode)]
        return super().load()


def _save(image: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from facecodec.codec import encode

    fp.write(encode(image, quality=image.encoderinfo.get("quality"), bits=image.encoderinfo.get("bits")))


Image.register_open(FORMAT, FczImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, ".fcz")
