"""The metadata an image carries besides its pixels (ICC profile, EXIF, XMP): read from Pillow, written back to it.

The .fcz block that holds it is facecodec.bitstream.metadata; this module is the image side: which of it an
input image has (Pillow puts all three in ``Image.info`` for JPEG, PNG, WebP and TIFF), and how each output
format takes it back. Not every format can: ``save_options`` says what it leaves out, and the caller warns.
"""
from __future__ import annotations

from PIL import Image, PngImagePlugin

from facecodec.bitstream.metadata import NO_METADATA, Metadata

__all__ = ["Metadata", "NO_METADATA", "from_image", "attach", "save_options", "decoded_from", "LABELS", "ORIGIN"]

LABELS = {"icc_profile": "ICC profile", "exif": "EXIF", "xmp": "XMP"}   # for messages and fcz info
XMP_PNG_KEY = "XML:com.adobe.xmp"   # the iTXt keyword XMP has in a PNG (XMP specification, part 3)
# A lossy decode's image says where it came from (``info[ORIGIN]``: weights and setting); PNG and JPEG outputs keep
# that as a "Software" text / a comment starting with MARK, so that encoding such a file again can be warned about.
ORIGIN = "fcz_origin"
MARK = "facecodec: decoded from a lossy .fcz file"


def from_image(image: Image.Image) -> Metadata:
    """The ICC profile, EXIF and XMP of an image as Pillow read them (``image.info``); b"" where absent."""
    info = image.info
    return Metadata(**{name: _as_bytes(info.get(name)) for name in LABELS})


def attach(image: Image.Image, metadata: Metadata) -> Image.Image:
    """``image`` with ``metadata`` in its ``info``, as Pillow's own readers leave it, so ``image.save`` and
    ``save_options`` find it. Returns the same image."""
    image.info.update({name: value for name, value in metadata.entries().items() if value})
    return image


def save_options(metadata: Metadata, fmt: str, origin: str = "") -> tuple[dict, list[str]]:
    """Keyword arguments for ``Image.save(format=fmt)`` that write ``metadata`` (and, for PNG and JPEG, the
    ``origin`` of a lossy decode), and the labels of the entries ``fmt`` cannot carry (measured with this Pillow:
    TIFF drops EXIF given as bytes, BMP has no place for any)."""
    # icc_profile is always given: Pillow's PNG and TIFF writers otherwise take the image's own from its info
    options: dict = {"icc_profile": None}
    if metadata.icc_profile and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        options["icc_profile"] = metadata.icc_profile
    if metadata.exif and fmt in ("PNG", "JPEG", "WEBP"):
        options["exif"] = metadata.exif
    if metadata.xmp:
        if fmt in ("JPEG", "WEBP"):
            options["xmp"] = metadata.xmp
        elif fmt == "PNG":
            text = PngImagePlugin.PngInfo()
            text.add_itxt(XMP_PNG_KEY, metadata.xmp.decode("utf-8", "replace"))
            options["pnginfo"] = text
        elif fmt == "TIFF":
            options["tiffinfo"] = {700: metadata.xmp}   # TIFF tag 700 holds XMP
    if origin and fmt == "PNG":
        options.setdefault("pnginfo", PngImagePlugin.PngInfo()).add_text("Software", f"{MARK} ({origin})")
    elif origin and fmt == "JPEG":
        options["comment"] = f"{MARK} ({origin})"
    written = {"icc_profile": options["icc_profile"] is not None, "exif": "exif" in options,
               "xmp": any(key in options for key in ("xmp", "pnginfo", "tiffinfo"))}
    return options, [LABELS[name] for name in metadata.names() if not written[name]]


def decoded_from(image: Image.Image) -> str | None:
    """What lossy .fcz file an image was decoded from (its weights and setting), where its PNG text or JPEG comment
    says so (``save_options``); else None."""
    if image.info.get(ORIGIN):          # the decoded image itself, handed back to encode
        return str(image.info[ORIGIN])
    for value in (image.info.get("Software"), image.info.get("comment")):
        text = _as_bytes(value).decode("utf-8", "replace")
        if text.startswith(MARK):
            return text[len(MARK):].strip(" ()")
    return None


def _as_bytes(value: object) -> bytes:
    if isinstance(value, Image.Exif):
        return value.tobytes()
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value) if isinstance(value, (bytes, bytearray)) else b""
