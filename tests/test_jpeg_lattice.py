"""JPEG-consistent decoding: a JPEG input's lattice kept in the file (format 6) and the decode moved onto it."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage.data import astronaut

import facecodec
from facecodec.bitstream import unpack
from facecodec.bitstream.lattice import (STANDARD_CHROMA, STANDARD_LUMA, SourceLattice, pack_block, read_block,
                                         scaled_table)
from facecodec.cli import main
from facecodec.jpeg_lattice import DCT, best_strengths, snap, source_lattice
from facecodec.metrics import psnr

FACE = astronaut()[20:132, 180:276]   # 96 x 112: a face-sized crop, sides multiples of 16


def jpeg(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", **{"quality": 75, "subsampling": 2, **options})
    return buffer.getvalue()


def pixels_of(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def reader(data: bytes):
    stream = io.BytesIO(data)

    def take(n: int) -> bytes:
        chunk = stream.read(n)
        if len(chunk) != n:
            raise facecodec.FczError("truncated")
        return chunk
    return take


# --- the block --------------------------------------------------------------------------------------------------

def test_standard_tables_are_written_as_their_quality_in_four_bytes():
    lattice = SourceLattice(scaled_table(STANDARD_LUMA, 75), scaled_table(STANDARD_CHROMA, 75), (2, 2), 5, 6)
    block = pack_block(lattice)
    assert block == bytes([0x22, 0x56, 0, 75])
    assert read_block(reader(block)) == lattice
    assert scaled_table(STANDARD_LUMA, 50) == STANDARD_LUMA and scaled_table(STANDARD_LUMA, 100) == (1,) * 64


def test_other_tables_are_written_step_by_step():
    own = tuple(range(3, 67))
    colour = SourceLattice(own, tuple(range(70, 134)), (2, 1), 8, 1)
    grey = SourceLattice(own, luma_strength=4)
    for lattice, head in ((colour, bytes([0x21, 0x81, 1])), (grey, bytes([0, 0x40, 1]))):
        block = pack_block(lattice)
        assert block[:3] == head and len(block) == 3 + 64 * (2 if lattice.chroma else 1)
        assert read_block(reader(block)) == lattice


@pytest.mark.parametrize("subsampling, sampling", [(2, (2, 2)), (1, (2, 1)), (0, (1, 1))])
def test_a_jpegs_lattice_is_read_with_its_subsampling(subsampling, sampling):
    data = jpeg(FACE, subsampling=subsampling)
    lattice = source_lattice(Image.open(io.BytesIO(data)))
    assert lattice.sampling == sampling and lattice.standard_quality() == 75
    assert (lattice.luma_strength, lattice.chroma_strength) == (0, 0)   # the encoder chooses them
    grey = source_lattice(Image.open(io.BytesIO(jpeg(FACE[..., 0]))))
    assert grey.chroma == () and grey.luma == lattice.luma


def test_no_lattice_for_other_formats_turned_or_changed_jpegs():
    png = io.BytesIO()
    Image.fromarray(FACE).save(png, "PNG")
    assert source_lattice(Image.open(png)) is None
    opened = Image.open(io.BytesIO(jpeg(FACE)))
    assert source_lattice(opened.resize((48, 56))) is None and source_lattice(opened.convert("L")) is None
    exif = Image.Exif()
    exif[0x0112] = 6   # turned a quarter: the blocks no longer start at the picture's corner
    turned = Image.open(io.BytesIO(jpeg(FACE, exif=exif.tobytes())))
    assert source_lattice(turned) is None


# --- moving onto the lattice ------------------------------------------------------------------------------------

def test_the_jpegs_own_pixels_barely_move_and_noisy_ones_move_back():
    data = jpeg(FACE)
    lattice = source_lattice(Image.open(io.BytesIO(data)))
    source = pixels_of(data)
    chosen = SourceLattice(lattice.luma, lattice.chroma, lattice.sampling, 6, 6)
    assert psnr(source, snap(source, chosen)) > 45          # on the lattice already, up to the decoder's rounding
    rng = np.random.default_rng(0)
    noisy = np.clip(source + rng.normal(0, 2.0, source.shape), 0, 255).round().astype(np.uint8)
    assert psnr(source, snap(noisy, chosen)) > psnr(source, noisy) + 1.0


def test_a_block_on_the_luma_lattice_is_found_exactly():
    steps = np.asarray(scaled_table(STANDARD_LUMA, 75), dtype=np.float64).reshape(8, 8)
    rng = np.random.default_rng(1)
    coefficients = np.round(rng.laplace(0, 0.7, (8, 8))) * steps   # pixels within 0..255: no clipping
    block = DCT.T @ coefficients @ DCT + 128                 # a greyscale JPEG block as a float decoder gives it
    lattice = SourceLattice(tuple(int(s) for s in steps.ravel()), luma_strength=8)
    assert 1 <= block.min() and block.max() <= 254
    pixels = block.round().astype(np.uint8)
    off = (pixels + rng.integers(-1, 2, pixels.shape)).astype(np.uint8)   # a lossy decode of it
    moved = snap(off, lattice)
    error = lambda a: np.abs(a.astype(np.float64) - pixels)   # noqa: E731
    assert error(moved).max() <= 1 and error(moved).sum() < 0.25 * error(off).sum()


def test_the_encoder_keeps_no_block_that_does_not_pay():
    data = jpeg(FACE)
    lattice = source_lattice(Image.open(io.BytesIO(data)))
    source = pixels_of(data)
    assert best_strengths(lattice, source, source, payload_bytes=1000) is None   # nothing left to win


# --- through the codec ------------------------------------------------------------------------------------------

def test_a_jpeg_input_decodes_closer_for_four_bytes_more():
    data = jpeg(FACE)
    source = pixels_of(data)
    kept, plain = facecodec.encode(data, quality=40), facecodec.encode(data, quality=40, jpeg_source=False)
    header, payload = unpack(kept)
    assert kept[4:6] == b"\x07\x04" and plain[4:6] == b"\x07\x00" and header.lattice.standard_quality() == 75
    assert len(kept) - len(plain) == 4 and payload == unpack(plain)[1]        # the payload is the same
    png = io.BytesIO()
    Image.fromarray(source).save(png, "PNG")
    assert plain == facecodec.encode(source, quality=40) == facecodec.encode(png.getvalue(), quality=40)  # no lattice
    gain = psnr(source, np.asarray(facecodec.decode(kept))) - psnr(source, np.asarray(facecodec.decode(plain)))
    assert gain > 1.0 and psnr(source, np.asarray(facecodec.decode(plain))) > 35, gain   # both within tolerance


def test_greyscale_jpegs_and_metadata_go_together():
    exif = Image.Exif()
    exif[0x010F] = "FaceCam"
    data = jpeg(FACE[..., 1], exif=exif.tobytes())
    kept = facecodec.encode(data, quality=40)
    assert kept[4:6] == b"\x07\x0d"   # a JPEG source block, metadata, greyscale
    image = facecodec.decode(kept)
    assert image.mode == "L" and image.getexif()[0x010F] == "FaceCam"
    plain = facecodec.decode(facecodec.encode(data, quality=40, jpeg_source=False))
    assert psnr(pixels_of(data), np.asarray(image)) > psnr(pixels_of(data), np.asarray(plain)) + 1.0
    assert facecodec.encode(data, quality=40, strip=True)[4:6] == b"\x07\x0c"   # the lattice is not metadata


def test_lossless_tiled_and_reduced_decodes_leave_the_lattice_alone():
    data = jpeg(FACE)
    assert facecodec.encode(data, lossless=True)[4:7] == b"\x07\x00\x06"   # jpeg-lepton-v1
    assert np.array_equal(np.asarray(facecodec.decode(facecodec.encode(data, lossless=True))), pixels_of(data))
    assert facecodec.encode(data, quality=20, tile=64)[4:6] == b"\x08\x02"           # tiles carry no JPEG source block
    kept, plain = facecodec.encode(data, quality=40), facecodec.encode(data, quality=40, jpeg_source=False)
    assert np.array_equal(np.asarray(facecodec.decode(kept, reduce=1)), np.asarray(facecodec.decode(plain, reduce=1)))


def test_the_pillow_plugin_keeps_a_jpegs_lattice(tmp_path):
    (tmp_path / "face.jpg").write_bytes(jpeg(FACE))
    with Image.open(tmp_path / "face.jpg") as image:
        image.save(tmp_path / "face.fcz", quality=40)
    assert (tmp_path / "face.fcz").read_bytes()[4:6] == b"\x07\x04"


def test_the_command_line_keeps_it_shows_it_and_leaves_it_out_when_asked(tmp_path):
    (tmp_path / "face.jpg").write_bytes(jpeg(FACE))
    runner = CliRunner()
    assert runner.invoke(main, ["encode", str(tmp_path / "face.jpg"), "-o", str(tmp_path / "a.fcz"),
                                "-q", "40"]).exit_code == 0
    assert runner.invoke(main, ["encode", str(tmp_path / "face.jpg"), "-o", str(tmp_path / "b.fcz"), "-q", "40",
                                "--no-jpeg-source"]).exit_code == 0
    shown = runner.invoke(main, ["info", str(tmp_path / "a.fcz")]).output
    assert "JPEG source: IJG quality 75 tables, 4:2:0, moved up to" in shown
    assert "JPEG source" not in runner.invoke(main, ["info", str(tmp_path / "b.fcz")]).output
    records = json.loads(runner.invoke(main, ["info", "--json", str(tmp_path / "a.fcz"), str(tmp_path / "b.fcz")]).output)
    assert records[0]["format_version"] == 7 and records[0]["jpeg_source"].startswith("IJG quality 75")
    assert records[1]["jpeg_source"] is None


def test_a_jpeg_coded_at_a_high_setting_is_kept_exactly_in_fewer_bytes():
    low = jpeg(FACE, quality=15)
    kept = facecodec.encode(low, lossless=True)
    with pytest.warns(facecodec.FczWarning, match=f"quality 60 gives [0-9,]+ bytes; the JPEG's own coefficients, "
                                                  f"kept exactly, take {len(kept):,}: kept those"):
        assert facecodec.encode(low, quality=60) == kept
    assert np.array_equal(np.asarray(facecodec.decode(kept)), pixels_of(low))
    with pytest.warns(facecodec.FczWarning, match="larger than the JPEG"):
        plain = facecodec.encode(low, quality=60, jpeg_source=False)
    assert len(kept) < len(plain) and plain[4:7] == b"\x07\x00\x03"     # wavelet-v2, its pixels coded
    with pytest.warns(facecodec.FczWarning, match="kept exactly"):
        assert facecodec.encode(low, size=len(kept)) == kept                    # it fits the target: the picture itself
    lossy = facecodec.encode(low, size=len(kept) - 1)
    assert len(lossy) < len(kept) and lossy[6] == 3


def test_a_file_larger_than_its_jpeg_says_so(recwarn):
    low = jpeg(FACE, quality=15)
    with pytest.warns(facecodec.FczWarning, match=f"larger than the JPEG it was coded from \\({len(low):,} bytes\\)"):
        big = facecodec.encode(low, quality=60, jpeg_source=False)         # the JPEG is not kept: said instead
    assert len(big) > len(low)
    recwarn.clear()
    small = facecodec.encode(low, quality=5)
    png = io.BytesIO()
    Image.fromarray(pixels_of(low)).save(png, "PNG")
    facecodec.encode(png.getvalue(), quality=60)                      # not a JPEG: nothing to weigh against
    facecodec.encode(low, lossless=True)                              # asked for every pixel: no advice
    assert len(small) < len(low) and not recwarn.list
