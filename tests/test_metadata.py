"""Metadata kept: a source's ICC profile, EXIF and XMP ride in the .fcz file (format 5) and come back out.

The byte layout is checked rule by rule in tests/test_format_rules.py; here: what a user sees, through the API,
the command line, folder runs and the Pillow plugin.
"""
from __future__ import annotations

import gc
import io
import sys
import warnings

import numpy as np
import pytest
from PIL import Image, ImageCms
from skimage.data import astronaut

import facecodec
from facecodec.bitstream import unpack
from facecodec.cli import main

XMP = (b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
       b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
       b'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>A. Photographer</dc:creator></rdf:Description>'
       b'</rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


# littlecms stamps a profile with the time it was made: made once, so every test compares the same bytes.
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "FaceCam"                   # Make
    exif[0x0132] = "2024:05:01 12:00:00"       # DateTime
    return exif.tobytes()


@pytest.fixture(scope="module")
def jpeg_with_metadata() -> bytes:
    """A 96x80 face crop saved as a camera would: JPEG with an sRGB ICC profile, EXIF and XMP."""
    buffer = io.BytesIO()
    Image.fromarray(astronaut()[40:120, 170:266]).save(buffer, "JPEG", quality=92, icc_profile=SRGB,
                                                        exif=camera_exif(), xmp=XMP)
    return buffer.getvalue()


def info_of(path_or_bytes) -> dict:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    with Image.open(source) as image:
        image.load()
        return dict(image.info)


def test_the_file_carries_the_sources_icc_exif_and_xmp_and_decode_gives_them_back(jpeg_with_metadata):
    source = info_of(jpeg_with_metadata)
    data = facecodec.encode(jpeg_with_metadata, jpeg_source=False)   # the JPEG source block: test_jpeg_lattice
    header = facecodec.read_header(data)
    assert data[4:6] == b"\x07\x01" and header.metadata.names() == ["icc_profile", "exif", "xmp"]
    decoded = facecodec.decode(data)
    for name in ("icc_profile", "exif", "xmp"):
        assert decoded.info[name] == source[name], name


def test_strip_leaves_a_file_identical_to_one_of_the_bare_pixels(jpeg_with_metadata):
    stripped = facecodec.encode(jpeg_with_metadata, strip=True, jpeg_source=False)
    bare = facecodec.encode(np.asarray(Image.open(io.BytesIO(jpeg_with_metadata)).convert("RGB")))
    assert stripped == bare and stripped[4:6] == b"\x07\x00"
    kept = facecodec.encode(jpeg_with_metadata, jpeg_source=False)
    assert unpack(kept)[1] == unpack(bare)[1]          # the same payload: metadata changes no symbol
    assert np.array_equal(np.asarray(facecodec.decode(kept)), np.asarray(facecodec.decode(bare)))
    assert "icc_profile" not in facecodec.decode(bare).info


def test_a_tiled_file_with_metadata_has_both_flags(jpeg_with_metadata):
    image = Image.open(io.BytesIO(jpeg_with_metadata))
    kept, bare = facecodec.encode(image, tile=64, quality=20), facecodec.encode(image, tile=64, quality=20, strip=True)
    assert kept[4:6] == b"\x08\x03" and bare[4:6] == b"\x08\x02"   # overlapping tiles: format 8
    assert unpack(kept)[1] == unpack(bare)[1]
    decoded = facecodec.decode(kept)
    assert np.array_equal(np.asarray(decoded), np.asarray(facecodec.decode(bare)))
    assert decoded.info["exif"] == image.info["exif"]
    assert facecodec.decode(kept, reduce=1).info["icc_profile"] == image.info["icc_profile"]


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_icc_and_exif_survive_jpg_to_fcz_to_png_and_jpg_byte_for_byte(runner, tmp_path, jpeg_with_metadata, suffix):
    source = tmp_path / "face.jpg"
    source.write_bytes(jpeg_with_metadata)
    assert runner.invoke(main, ["encode", str(source)]).exit_code == 0
    result = runner.invoke(main, ["decode", str(tmp_path / "face.fcz"), "-o", str(tmp_path / f"out{suffix}")])
    assert result.exit_code == 0 and "warning" not in result.output, result.output
    written, original = info_of(tmp_path / f"out{suffix}"), info_of(jpeg_with_metadata)
    for name in ("icc_profile", "exif", "xmp"):
        assert written[name] == original[name], name


def test_fcz_info_lists_the_metadata_and_the_format_version(runner, tmp_path, jpeg_with_metadata):
    path = tmp_path / "face.fcz"
    path.write_bytes(facecodec.encode(jpeg_with_metadata, jpeg_source=False))
    result = runner.invoke(main, ["info", str(path)])
    assert result.exit_code == 0 and f"metadata: ICC profile {len(SRGB):,} bytes, EXIF" in result.output
    result = runner.invoke(main, ["info", "--json", str(path)])
    assert '"format_version": 7' in result.output and '"xmp": ' in result.output


def test_strip_on_encode_and_on_decode(runner, tmp_path, jpeg_with_metadata):
    source = tmp_path / "face.jpg"
    source.write_bytes(jpeg_with_metadata)
    assert runner.invoke(main, ["encode", str(source), "-o", str(tmp_path / "bare.fcz"), "--strip"]).exit_code == 0
    assert not facecodec.read_header(tmp_path / "bare.fcz").metadata
    assert runner.invoke(main, ["encode", str(source)]).exit_code == 0
    result = runner.invoke(main, ["decode", str(tmp_path / "face.fcz"), "-o", str(tmp_path / "out.bmp"), "--strip"])
    assert result.exit_code == 0 and "warning" not in result.output
    result = runner.invoke(main, ["decode", str(tmp_path / "face.fcz"), "-o", str(tmp_path / "out.png"), "--strip"])
    assert not {"icc_profile", "exif", "xmp"} & set(info_of(tmp_path / "out.png"))


@pytest.mark.parametrize("suffix, dropped, kept", [
    (".bmp", "ICC profile, EXIF and XMP not written: BMP output cannot carry them", ()),
    (".tif", "EXIF not written: TIFF output cannot carry it", ("icc_profile", "xmp")),
])
def test_an_output_format_that_cannot_carry_metadata_warns(runner, tmp_path, jpeg_with_metadata, suffix, dropped,
                                                            kept):
    path = tmp_path / "face.fcz"
    path.write_bytes(facecodec.encode(jpeg_with_metadata, jpeg_source=False))
    result = runner.invoke(main, ["decode", str(path), "-o", str(tmp_path / f"out{suffix}")])
    assert result.exit_code == 0 and f"warning: {path}: {dropped}" in result.output, result.output
    written, original = info_of(tmp_path / f"out{suffix}"), info_of(jpeg_with_metadata)
    assert all(written[name] == original[name] for name in kept)


def test_folder_runs_keep_metadata_both_ways(runner, tmp_path, jpeg_with_metadata):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(jpeg_with_metadata)
    assert runner.invoke(main, ["encode", str(tmp_path / "in"), "-o", str(tmp_path / "fcz")]).exit_code == 0
    assert facecodec.read_header(tmp_path / "fcz" / "a.fcz").metadata.exif
    assert runner.invoke(main, ["decode", str(tmp_path / "fcz"), "-o", str(tmp_path / "png")]).exit_code == 0
    assert info_of(tmp_path / "png" / "a.png")["icc_profile"] == SRGB
    result = runner.invoke(main, ["decode", str(tmp_path / "fcz"), "-o", str(tmp_path / "bare"), "--strip"])
    assert result.exit_code == 0 and "icc_profile" not in info_of(tmp_path / "bare" / "a.png")


def test_a_profile_for_other_pixels_than_the_coded_ones_is_dropped_with_a_warning():
    cmyk_profile = bytearray(SRGB)
    cmyk_profile[16:20] = b"CMYK"              # what a CMYK JPEG carries; Pillow hands its pixels over as RGB
    image = Image.fromarray(astronaut()[40:88, 170:218])
    image.info["icc_profile"] = bytes(cmyk_profile)
    with pytest.warns(facecodec.FczWarning, match="ICC profile dropped: it describes CMYK pixels"):
        data = facecodec.encode(image)
    assert not facecodec.read_header(data).metadata


# --- the Pillow plugin --------------------------------------------------------------------------------------

class CountingFile(io.BytesIO):
    """A file object that remembers how far it was read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.furthest = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.furthest = max(self.furthest, self.tell())
        return chunk


def test_pillow_open_reads_the_header_only_and_opens_no_weights_file(jpeg_with_metadata):
    data = facecodec.encode(jpeg_with_metadata)
    payload_length = len(unpack(data)[1])
    opened: list[str] = []
    listening = [True]                 # an audit hook stays for the process: it stops listening after this test

    def audit(event: str, args: tuple) -> None:
        if listening[0] and event == "open" and str(args[0]).endswith(".safetensors"):
            opened.append(str(args[0]))
    facecodec.zoo.manifest()           # the manifest may be read; the weights file must not be
    sys.addaudithook(audit)
    file = CountingFile(data)
    try:
        image = Image.open(file)
    finally:
        listening[0] = False
    assert file.furthest <= len(data) - payload_length and not opened
    assert image.info["exif"] == info_of(jpeg_with_metadata)["exif"] and image.info["quality"] == 50
    assert np.array_equal(np.asarray(image), np.asarray(facecodec.decode(data)))


def test_pillow_load_closes_the_file_it_opened(tmp_path, jpeg_with_metadata):
    path = tmp_path / "face.fcz"
    path.write_bytes(facecodec.encode(jpeg_with_metadata, jpeg_source=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        image = Image.open(path)
        image.load()
        del image
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_pillow_save_keeps_metadata_and_refuses_keywords_it_does_not_know(tmp_path, jpeg_with_metadata):
    image = Image.open(io.BytesIO(jpeg_with_metadata))
    image.save(tmp_path / "kept.fcz", quality=30)
    assert facecodec.read_header(tmp_path / "kept.fcz").metadata.names() == ["icc_profile", "exif", "xmp"]
    image.save(tmp_path / "bare.fcz", quality=30, strip=True)
    assert not facecodec.read_header(tmp_path / "bare.fcz").metadata
    Image.new("RGB", (32, 32)).save(tmp_path / "given.fcz", icc_profile=SRGB)
    assert facecodec.read_header(tmp_path / "given.fcz").metadata.icc_profile == SRGB
    for keyword in ({"weights": "wavelet-v2"}, {"quality": 30, "subsampling": 0}):
        with pytest.raises(TypeError, match="saving as FCZ takes quality"):
            image.save(tmp_path / "wrong.fcz", **keyword)
        assert not (tmp_path / "wrong.fcz").exists() or (tmp_path / "wrong.fcz").stat().st_size == 0


def test_pillow_refuses_a_broken_header_at_open_and_a_broken_payload_at_load(tmp_path, jpeg_with_metadata):
    data = facecodec.encode(jpeg_with_metadata)
    newer = data[:4] + b"\x09" + data[5:]
    with pytest.raises(facecodec.FczError, match="newer than this facecodec reads"):
        Image.open(io.BytesIO(newer))
    with Image.open(io.BytesIO(data[:-3])) as image:
        with pytest.raises(OSError, match="checksum mismatch") as caught:
            image.load()
    assert isinstance(caught.value, facecodec.FczError)


def test_the_tests_metadata_fixture_is_what_pillow_reads_back(jpeg_with_metadata):
    info = info_of(jpeg_with_metadata)
    assert info["icc_profile"] == SRGB and info["xmp"] == XMP and b"FaceCam" in info["exif"]



# --- re-encoding a decode ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_encoding_a_lossy_decode_again_warns_and_a_lossless_one_does_not(runner, tmp_path, suffix):
    face = astronaut()[20:120, 150:250]
    (tmp_path / "lossy.fcz").write_bytes(facecodec.encode(face, quality=30))
    (tmp_path / "exact.fcz").write_bytes(facecodec.encode(face, lossless=True))
    for name in ("lossy", "exact"):
        assert runner.invoke(main, ["decode", str(tmp_path / f"{name}.fcz"), "-o", str(tmp_path / f"{name}{suffix}")]
                             ).exit_code == 0
        result = runner.invoke(main, ["encode", str(tmp_path / f"{name}{suffix}"), "-o", str(tmp_path / f"{name}2.fcz")])
        assert result.exit_code == 0
        warned = "decoded from a lossy .fcz file (wavelet-v2, quality 30)" in result.output
        assert warned == (name == "lossy"), result.output
    result = runner.invoke(main, ["decode", str(tmp_path / "lossy.fcz"), "-o", str(tmp_path / f"bare{suffix}"),
                                  "--strip"])
    assert "decoded from" not in runner.invoke(main, ["encode", str(tmp_path / f"bare{suffix}"), "-o",
                                                      str(tmp_path / "bare.fcz")]).output
    assert "decoded from" not in runner.invoke(main, ["restore", str(tmp_path / f"lossy{suffix}"), "--task",
                                                      "denoise", "-o", str(tmp_path / "r.png")]).output


def test_the_api_warns_when_a_decoded_image_is_encoded_again():
    decoded = facecodec.decode(facecodec.encode(astronaut()[20:84, 150:214], quality=40))
    assert decoded.info["fcz_origin"] == "wavelet-v2, quality 40"
    with pytest.warns(facecodec.FczWarning, match="decoded from a lossy .fcz file"):
        facecodec.encode(decoded)
