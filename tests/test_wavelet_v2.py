"""Context scheme 2 (wavelet-v2): four passes per band, sign contexts, and a quality scale reaching lower."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file
from skimage.data import astronaut

import facecodec
from facecodec.bitstream import unpack
from facecodec.bitstream import contexts as wc
from facecodec.bitstream import subbands as ws
from facecodec.bitstream import wavelet as wb
from facecodec.families.wavelet import WaveletFamily
from facecodec.metrics import psnr
from facecodec.models import wavelet_transform as wt
from facecodec.train import wavelet_tables
from facecodec.zoo import load_spec, load_weights, weights_tensors

WEIGHTS = "wavelet-v2"
S2 = wc.SCHEMES[2]


@pytest.fixture(scope="module")
def spec():
    return load_spec(WEIGHTS)


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (5, 1), (2, 3), (7, 6), (13, 8)])
def test_the_four_passes_cover_a_band_once_in_raster_order(shape):
    index = np.arange(shape[0] * shape[1]).reshape(shape)
    passes = [wc.at(index, where) for where in S2.phases(shape)]
    assert [len(p) for p in passes] == S2.pass_sizes(*shape)
    assert sorted(np.concatenate(passes).tolist()) == list(range(index.size))
    assert all((np.diff(p) > 0).all() for p in passes)


def test_the_weights_use_scheme_2_and_their_own_quality_scale(spec):
    assert spec.family.scheme is S2 and spec.family.continuous
    assert spec.family.level(1) == pytest.approx(-0.5) and spec.family.level(10) == 1.0
    levels = [spec.family.level(q) for q in range(1, 101)]
    assert levels == sorted(levels) and len(set(levels)) == 100
    assert load_spec("wavelet-v1").family.level(1) == pytest.approx(0.1)   # older weights keep their scale


@pytest.mark.parametrize("quality", [1, 4, 10, 37, 50, 73, 100])
def test_qualities_and_efforts_round_trip_odd_sizes_and_greyscale(odd_face, spec, quality):
    grey = odd_face[..., 1].copy()
    for effort in (0, 1):
        data = facecodec.encode(odd_face, quality=quality, weights_id=WEIGHTS, effort=effort)
        header, payload = unpack(data)
        table = spec.table(header)
        weights = load_weights(WEIGHTS)
        rgb = torch.from_numpy(odd_face.transpose(2, 0, 1).copy())[None].float() / 255
        symbols, _ = weights.family.quantize(weights.model, weights.model.encode(rgb), quality, effort,
                                             weights.entropy_tables)
        assert np.array_equal(spec.family.entropy_decode(payload, table, header), symbols[0])
        assert facecodec.decode(data).size == (97, 101)
        grey_data = facecodec.encode(grey, quality=quality, weights_id=WEIGHTS, effort=effort)
        assert facecodec.decode(grey_data).mode == "L" and len(grey_data) < len(data)


def test_sizes_and_psnr_rise_with_quality(face):
    sizes, scores = [], []
    for quality in (1, 5, 10, 20, 40, 60, 80, 100):
        data = facecodec.encode(face, quality=quality, weights_id=WEIGHTS)
        sizes.append(len(data))
        scores.append(psnr(face, facecodec.decode(data)))
    assert sizes == sorted(sizes) and scores == sorted(scores), (sizes, scores)
    assert scores[-1] >= 48


@pytest.mark.parametrize("quality", [10, 30, 50, 70])
def test_scheme_2_codes_the_same_symbols_in_fewer_bytes_than_scheme_1(face, odd_face, quality):
    # wavelet-v1's steps, offsets and post-filter, so at effort 0 (no search) the same symbols and pixels:
    # only the contexts differ. The astronaut is not a face the tables were counted on. (Past the last
    # trained level, at quality 90, its crop measured 0.5 % larger with scheme 2: not asserted.)
    for image in (face, odd_face):
        old, new = (facecodec.encode(image, quality=quality, weights_id=w, effort=0) for w in ("wavelet-v1", WEIGHTS))
        assert len(new) < len(old), (quality, len(old), len(new))
        assert np.array_equal(np.asarray(facecodec.decode(old)), np.asarray(facecodec.decode(new)))


def test_quality_1_reaches_below_the_old_lowest_rate(face):
    old = len(facecodec.encode(face, quality=1, weights_id="wavelet-v1"))
    new = len(facecodec.encode(face, quality=1, weights_id=WEIGHTS))
    assert new < 0.8 * old, (old, new)


def test_extreme_values_escape_and_round_trip(spec):
    rng = np.random.default_rng(3)
    planes = rng.integers(-40, 41, (3, 23, 19)).astype(np.int32)
    planes[0, 5, 7], planes[1, 20, 3], planes[2, 0, 18] = wb.MAX_SYMBOL, -wb.MAX_SYMBOL, 2 ** 20 + 12345
    planes[:, :2, :2] = 0   # the LL band: its residuals must stay in range
    model = spec.family.entropy_model(spec.entropy_tables, 50)
    payload = wb.encode_planes(planes, model)
    assert np.array_equal(wb.decode_planes(payload, model, (23, 19)), planes)


@pytest.mark.parametrize("reduce", [1, 2, 3, 4])
def test_reduced_decoding_matches_the_full_coefficients(odd_face, spec, reduce):
    data = facecodec.encode(odd_face, quality=50, weights_id=WEIGHTS)
    header, payload = unpack(data)
    table = spec.table(header)
    full = spec.family.entropy_decode(payload, table, header)
    part = spec.family.entropy_decode(payload, table, header, reduce=reduce)
    for level, orientation, rows, cols in ws.subbands(101, 97):
        expected = full[:, rows, cols] if orientation == "LL" or level > reduce else 0
        assert np.array_equal(part[:, rows, cols], expected + np.zeros_like(part[:, rows, cols]))
    small = facecodec.decode(data, reduce=reduce)
    assert small.size == (-(-97 // 2 ** reduce), -(-101 // 2 ** reduce))


def test_payload_bound_holds_and_a_cut_payload_is_refused(face, spec):
    data = facecodec.encode(face, quality=30, weights_id=WEIGHTS)
    header, payload = unpack(data)
    model = spec.table(header)
    shape = header.latent_shape[1:]
    assert 8 * len(payload) + 64 >= wb.min_payload_bits(model, shape)
    with pytest.raises(facecodec.FczError):
        wb.decode_planes(payload[: 4 * (len(payload) // 16)], model, shape)


def test_the_table_builder_writes_scheme_2_weights_that_code(tmp_path, odd_face):
    faces = tmp_path / "faces"
    faces.mkdir()
    for k, (top, left) in enumerate([(0, 0), (100, 200), (250, 300)]):
        Image.fromarray(astronaut()[top:top + 64, left:left + 64]).save(faces / f"{k}.png")
    out = tmp_path / "weights"
    out.mkdir()
    wavelet_tables.main(["--train", str(faces), "--images", "3", "--max-scale", "1.6", "--scheme", "2",
                         "--id", "test-v2", "--weights-dir", str(out), "--filter-from", "wavelet-v1",
                         "--lowest-level", "-0.5", "--default-setting", "50"])
    entry = exported(out)[0]
    assert entry["model"]["context_scheme"] == 2 and entry["model"]["lowest_level"] == -0.5
    assert "--filter-from wavelet-v1" in entry["notes"] and entry["settings"] == [1, 100]
    tensors = load_file(out / "test-v2.safetensors")
    shipped = weights_tensors("wavelet-v1")
    assert all(np.array_equal(tensors[n], shipped[n]) for n in shipped if n.startswith("postfilter."))
    assert tensors["entropy.quality5"].dtype == np.uint16 and tensors["entropy.quality5"].min() >= 1
    latent = WaveletFamily.from_entry(entry)
    model = latent.entropy_model({n[len("entropy."):]: a for n, a in tensors.items() if n.startswith("entropy.")}, 50)
    assert model.scheme is S2 and np.abs(model.sign_weights).max() > 0   # a vote was fitted
    q = wt.quantize(wt.analysis(odd_face.transpose(2, 0, 1).astype(np.float32)), tensors["steps"][4], 0.25)
    assert np.array_equal(wb.decode_planes(wb.encode_planes(q, model), model, q.shape[1:]), q)


def exported(weights_dir) -> list[dict]:
    """An export's manifest entries in ``weights_dir``, each with its model card's record (facecodec.train.cards):
    the manifest holds only the fields the runtime reads."""
    from facecodec.train.cards import RUNTIME_FIELDS, card_record

    entries = json.loads((Path(weights_dir) / "manifest.json").read_text())["weights"]
    assert all(set(entry) <= set(RUNTIME_FIELDS) for entry in entries)
    return [{**card_record(weights_dir, entry["id"]), **entry} for entry in entries]
