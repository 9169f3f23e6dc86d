"""facecodec: a learned image codec for photos of faces.

    >>> import facecodec
    >>> data = facecodec.encode("face.png")        # bytes of a .fcz file
    >>> image = facecodec.decode(data)              # PIL.Image.Image
    >>> PIL.Image.open("face.fcz")                  # Pillow reads and writes .fcz once facecodec is imported
"""
from facecodec.bitstream import FczError
from facecodec.codec import DEFAULT_BITS, decode, encode, read_header
from facecodec.image_io import FczWarning
from facecodec import pillow_plugin  # noqa: F401  (registers .fcz with Pillow)

__version__ = "0.1.0"
__all__ = ["DEFAULT_BITS", "FczError", "FczWarning", "decode", "encode", "read_header", "__version__"]
