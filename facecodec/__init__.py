"""facecodec: a learned image codec for photos of faces.

    >>> import facecodec
    >>> data = facecodec.encode("face.png")        # bytes of a .fcz file
    >>> image = facecodec.decode(data)              # PIL.Image.Image
"""
from facecodec.bitstream import FczError
from facecodec.codec import DEFAULT_BITS, decode, encode, read_header
from facecodec.image_io import FczWarning

__version__ = "0.1.0"
__all__ = ["DEFAULT_BITS", "FczError", "FczWarning", "decode", "encode", "read_header", "__version__"]
