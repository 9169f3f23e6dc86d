"""Pillow file plugin: ``Image.open("face.fcz")`` and ``image.save("face.fcz")`` once facecodec is imported.

Opening reads only the header, as Pillow's own plugins do: size, mode, the setting (``info["quality"]`` or
``info["bits"]``), ``info["weights_id"]`` and the metadata the file carries (``info["icc_profile"]``, ``"exif"``,
``"xmp"``) come from it, and a file whose header is broken or names weights that are not installed is refused
there. The payload and the checksum are read, checked and decoded on first access to the pixels; a damaged
payload fails then, as a truncated PNG does. Saving takes what ``fcz encode`` takes: ``quality=N`` (or
``bits=N`` for the seed's fixed-bit-depth path), ``weights_id=``, ``effort=N``, ``size=BYTES``, ``bpp=X``,
``tile=N``, ``strip=True`` and ``lossless=True`` (as Pillow's WebP); it keeps the image's ICC profile, EXIF and XMP (``info`` or the save call's
``icc_profile=`` / ``exif=`` / ``xmp=``) unless ``strip``. Other keywords are refused, not ignored.
"""
from __future__ import annotations

from io import BytesIO
from typing import IO

from PIL import Image, ImageFile, UnidentifiedImageError

from facecodec.bitstream import FczError
from facecodec.bitstream.container import MAGIC, read_header
from facecodec.families import family_class
from facecodec.metadata import LABELS, attach
from facecodec.zoo import manifest_entry

FORMAT = "FCZ"
SAVE_OPTIONS = ("quality", "bits", "weights_id", "effort", "size", "bpp", "tile", "strip", "lossless")
# What Image.save puts into encoderinfo itself, or what a caller copies from another image's info: not ours to refuse.
PILLOW_OPTIONS = ("format", "save_all", "append_images", *LABELS)


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
        try:
            header = read_header(self.fp.read)
            entry = manifest_entry(header.weights_id)
            family = family_class(entry["family"]).from_entry(entry)
        except FczError as exc:  # only files with .fcz's magic get here: it is ours, and broken
            raise FczImageError(str(exc)) from None
        self._size = (header.width, header.height)
        self._mode = header.mode
        self.info[family.option] = family.setting_of(header)  # "quality" or "bits", as save() takes it
        self.info["weights_id"] = header.weights_id
        attach(self, header.metadata)
        self.tile = []
        self._decoded = False

    def load(self):
        if not self._decoded:
            from facecodec.codec import decode  # the codec only once pixels are wanted

            self.fp.seek(0)
            try:
                decoded = decode(self.fp.read())
            except FczError as exc:
                raise FczImageError(str(exc)) from None
            finally:
                if self._exclusive_fp:  # Pillow opened the file: it is read whole now, so close it here
                    self.fp.close()
            self._decoded = True
            self.fp = BytesIO(decoded.tobytes())
            self._exclusive_fp = False
            self.tile = [ImageFile._Tile("raw", (0, 0, *self.size), 0, self.mode)]
        return super().load()


def _save(image: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from facecodec.codec import encode

    info = image.encoderinfo
    unknown = sorted(set(info) - set(SAVE_OPTIONS) - set(PILLOW_OPTIONS))
    if unknown:
        raise TypeError(f"saving as FCZ takes {', '.join(SAVE_OPTIONS)}; not {', '.join(unknown)}")
    if any(name in info for name in LABELS):  # metadata given to save() wins over the image's own
        image = image.copy()
        image.info.update({name: info[name] for name in LABELS if name in info})
    fp.write(encode(image, **{name: info[name] for name in SAVE_OPTIONS if name in info}))


Image.register_open(FORMAT, FczImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, ".fcz")
