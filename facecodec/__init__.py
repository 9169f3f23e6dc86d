"""facecodec: a learned image codec for photos of faces.

    >>> import facecodec
    >>> data = facecodec.encode("face.png")        # bytes of a .fcz file
    >>> image = facecodec.decode(data)              # PIL.Image.Image
    >>> files = facecodec.encode_many(images, facecodec.encode_settings(quality=30))   # the batch path, N images
    >>> face = facecodec.restore("noisy.png", task="denoise")   # fcz restore: facecodec.restoration
    >>> PIL.Image.open("face.fcz")                  # Pillow reads and writes .fcz once facecodec is imported

Importing facecodec does not import torch: the codec (facecodec.codec) and ``restore`` load it on
first use, so header reading, ``fcz info`` and ``fcz --help`` stay fast. Folder runs: facecodec.runner.
"""
from facecodec.bitstream import FczError, FczHeader
from facecodec.reading import read_header
from facecodec.image_io import FczWarning
from facecodec import pillow_plugin  # noqa: F401  (registers .fcz with Pillow)

__version__ = "0.1.0"
CODEC_API = ("encode", "decode", "encode_many", "decode_many", "encode_settings")
__all__ = ["FczError", "FczHeader", "FczWarning", *CODEC_API, "read_header", "restore", "__version__"]


def __getattr__(name: str):
    if name in CODEC_API:  # the network path, and with it torch, only when asked for
        from facecodec import codec

        return getattr(codec, name)
    if name == "restore":
        from facecodec import restoration

        return restoration.restore
    raise AttributeError(f"module 'facecodec' has no attribute {name!r}")
