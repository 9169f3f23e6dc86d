"""The benchmark suite's own checks: BD-rate maths, the report's comparison of fcz's default curve, the error image,
speed.py's step-by-step fcz, and a tiny end-to-end rate-distortion run.

Parts of benchmarks/ need scipy (BD-rates) and matplotlib (plots and the mosaic), from the `bench` extra. The `test`
extra, which the README's `pip install -e '.[test]'` and CI install, holds them too, so these tests run in CI; in an
environment without them (`pip install -e .` and pytest alone) their tests skip, saying so, and the others still run."""
from __future__ import annotations

import csv
import importlib
import io
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage.data import astronaut

import facecodec
from facecodec import classical, zoo
from facecodec.metrics import bits_per_pixel, psnr

from benchmarks.operating_points import default_setting, fcz_choice
from benchmarks.speed import avif_of_size, fcz_split

RATES = np.array([0.1, 0.2, 0.4, 0.8, 1.6, 3.2])
PSNRS = np.array([24.0, 27.5, 30.5, 33.0, 36.5, 41.0])  # unevenly spaced: PCHIP is not a straight line here


def bench_module(name: str, *needs: str):
    """Import benchmarks.<name>, or skip the test when a package of the bench extra that it needs is missing."""
    for package in needs:
        pytest.importorskip(package, reason=f"benchmarks/{name}.py needs {package}, from the test and bench extras: "
                                            "pip install -e '.[test]'")
    return importlib.import_module(f"benchmarks.{name}")


@pytest.fixture()
def bdrate():
    pytest.importorskip("scipy", reason="facecodec.train.bdrate needs scipy, from the test and bench extras: "
                                         "pip install -e '.[test]'")
    return importlib.import_module("facecodec.train.bdrate")


@pytest.fixture()
def report():
    return bench_module("report", "scipy")


# --- BD-rate --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("factor", [0.5, 0.8, 1.25, 3.0])
def test_bd_rate_of_a_curve_shifted_in_rate_is_the_shift(bdrate, factor):
    result = bdrate.bd_rate(RATES, PSNRS, RATES * factor, PSNRS)
    assert result.percent == pytest.approx((factor - 1) * 100, abs=1e-9)
    assert result.overlap == pytest.approx((24.0, 41.0))


def test_bd_rate_integrates_only_over_the_shared_psnr_range(bdrate):
    # log-rate linear in PSNR with different slopes: PCHIP reproduces lines exactly, so the answer is
    # analytic: over the shared 30..40 dB, mean of (p - 20)(1/8 - 1/10) = (35 - 20) / 40.
    anchor_psnr, test_psnr = np.linspace(25, 40, 6), np.linspace(30, 45, 6)
    result = bdrate.bd_rate(np.exp((anchor_psnr - 20) / 10), anchor_psnr, np.exp((test_psnr - 20) / 8), test_psnr)
    assert result.overlap == pytest.approx((30.0, 40.0))
    assert result.percent == pytest.approx((math.exp(15 / 40) - 1) * 100, rel=1e-9)


def test_bd_rate_reports_no_overlap_with_both_ranges(bdrate):
    result = bdrate.bd_rate([0.1, 0.5, 1.0], [20.0, 25.0, 30.0], [0.2, 0.4, 0.9], [32.0, 36.0, 40.0])
    assert result.percent is None and result.overlap is None
    assert result.text() == "no overlap (anchor 20.00-30.00 dB, test 32.00-40.00 dB)"


def test_dominated_points_are_left_out_of_a_curve(bdrate):
    # A setting that costs more bits for a lower PSNR must not bend the interpolation.
    rates, psnrs = np.append(RATES, 1.0), np.append(PSNRS, 30.0)
    kept_rates, kept_psnrs = bdrate.pareto_front(rates, psnrs)
    assert list(kept_rates) == list(RATES) and list(kept_psnrs) == list(PSNRS)
    assert bdrate.bd_rate(rates, psnrs, RATES * 0.8, PSNRS).percent == pytest.approx(-20.0, abs=1e-9)


def test_reading_a_curve_at_a_rate_or_a_psnr(bdrate):
    psnrs = 30 + 6 * np.log2(RATES / 0.1)  # a straight line in log-rate
    assert bdrate.psnr_at_rate(RATES, psnrs, 0.3) == pytest.approx(30 + 6 * math.log2(3))
    assert bdrate.rate_at_psnr(RATES, psnrs, 42.0) == pytest.approx(0.1 * 2 ** 2)
    assert bdrate.psnr_at_rate(RATES, psnrs, 0.05) is None  # below the curve's lowest rate
    assert bdrate.rate_at_psnr(RATES, psnrs, 70.0) is None


# --- fcz's default curve in the report ------------------------------------------------------------------

def _point(codec: str, setting: str, bpp: float, psnr_db: float) -> dict:
    return {"codec": codec, "setting": setting, "value": float(setting.split("=")[1]), "bpp": bpp, "psnr_db": psnr_db}


def _synthetic_results(fcz_points: list[tuple[float, float]]) -> dict:
    """JPEG 2000 on a straight line in log-rate, fcz's default curve from (bpp, PSNR) pairs, and a second fcz
    curve far above JPEG 2000 that must not count, as it is not the default weights'."""
    psnrs = 30 + 6 * np.log2(RATES / 0.1)  # PCHIP is exact on a line: 36 dB at 0.2 bpp, 42 at 0.4, ...
    points = [_point("jpeg2000", f"rate={24 / r:g}", r, p) for r, p in zip(RATES, psnrs)]
    points += [_point("fcz/gained", f"quality={q}", r, p) for q, (r, p) in enumerate(fcz_points, start=1)]
    points += [_point("fcz/other", f"bits={b}", r, 60.0 + b) for b, r in enumerate(RATES, start=1)]
    return {"metadata": {"default_weights_id": "gained", "default_setting": "quality=3"}, "points": points[::-1]}


def test_points_above_jpeg2000_are_counted_at_each_points_rate(report):
    found = report.comparison(_synthetic_results([(0.05, 25.0), (0.2, 37.0), (0.4, 41.0), (0.8, 47.5), (1.6, 55.0),
                                           (4.0, 70.0)]))
    margins = found["margins"]
    assert found["margins_anchor"] == "jpeg2000" and found["default_setting"] == "quality=3"
    assert [r["setting"] for r in margins["points"]] == [f"quality={q}" for q in range(1, 7)]
    assert [r["margin_db"] for r in margins["points"]] == [None, pytest.approx(1.0), pytest.approx(-1.0),
                                                           pytest.approx(-0.5), pytest.approx(1.0), None]
    assert margins["points"][1]["anchor_psnr_db"] == pytest.approx(36.0)
    assert (margins["above"], margins["compared"]) == (2, 4)
    assert margins["outside_range"] == ["quality=1", "quality=6"]  # below 0.1 bpp and above 3.2 bpp
    assert margins["anchor_bpp_range"] == pytest.approx((0.1, 3.2))
    assert {row["codec"] for row in found["codecs"]} == {"jpeg2000", "fcz/other"}


def test_a_curve_is_monotonic_only_if_bpp_and_psnr_rise_at_every_step(report):
    rising = _synthetic_results([(0.2, 30.0), (0.3, 31.0), (0.5, 33.0)])["points"]
    assert report.monotonic([p for p in rising if p["codec"] == "fcz/gained"]) == {
        "monotonic": True, "bpp_increasing": True, "psnr_increasing": True, "breaks": []}
    dipping = [p for p in _synthetic_results([(0.2, 30.0), (0.3, 31.0), (0.5, 30.5), (0.7, 32.0)])["points"]
               if p["codec"] == "fcz/gained"]
    found = report.monotonic(dipping)
    assert (found["monotonic"], found["bpp_increasing"], found["psnr_increasing"]) == (False, True, False)
    assert found["breaks"] == [{"from": "quality=2", "to": "quality=3", "bpp": [0.3, 0.5], "psnr_db": [31.0, 30.5]}]


# --- speed ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("weights_id", zoo.pixel_codec_ids())
def test_speed_step_by_step_fcz_matches_the_library(weights_id, face):
    # fcz_split raises if its step-by-step encode / decode differ from facecodec.encode / decode.
    _, quality, bits = fcz_choice(weights_id=weights_id)
    split = fcz_split(face, weights_id, quality, bits, "cpu", repeats=1)
    assert set(split) == {"encode", "decode"} and all(ms >= 0 for s in split.values() for ms in s.values())


def test_the_avif_anchor_has_the_quality_whose_file_size_is_nearest(face):
    small = face[:48, :48]
    anchor = avif_of_size(small, 900)
    sizes = {q: len(classical.encode(small, "AVIF", {**classical.avif_options(q), "speed": 4}))
             for q in (anchor.value - 1, anchor.value, anchor.value + 1)}
    assert anchor.setting == f"quality={anchor.value}, speed=4"
    assert abs(sizes[anchor.value] - 900) == min(abs(size - 900) for size in sizes.values())


# --- error image ----------------------------------------------------------------------------------------

def test_error_image_formula():
    error_image = bench_module("mosaic", "matplotlib").error_image
    x = np.array([[[0, 200, 100]], [[50, 50, 50]]], dtype=np.uint8)
    y = np.array([[[10, 100, 200]], [[50, 50, 50]]], dtype=np.uint8)
    e = error_image(x, y)
    assert e.shape == x.shape
    # 0 - 10 must be negative (no uint8 wrap-around); +100 and -100 clip at 1 and 0; equal pixels are 0.5.
    assert e[0, 0] == pytest.approx([0.5 - 80 / 255, 1.0, 0.0])
    assert e[1, 0] == pytest.approx([0.5, 0.5, 0.5])
    assert error_image(np.full((2, 2, 3), 20, np.uint8), np.full((2, 2, 3), 18, np.uint8))[0, 0, 0] == \
        pytest.approx(0.5 + 16 / 255)


# --- end to end -----------------------------------------------------------------------------------------

def _expected_bpp_and_psnr(images: list[np.ndarray], encode, decode) -> tuple[float, float]:
    """Independent reference: mean bpp from real encoded sizes, mean RGB PSNR."""
    bpps, psnrs = [], []
    for pixels in images:
        data = encode(pixels)
        bpps.append(bits_per_pixel(len(data), pixels.shape[1], pixels.shape[0]))
        psnrs.append(psnr(pixels, np.asarray(decode(data).convert("RGB"))))
    return float(np.mean(bpps)), float(np.mean(psnrs))


def _jpeg_q50(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=50, subsampling=2, optimize=True)
    return buffer.getvalue()


def test_rate_distortion_end_to_end(tmp_path):
    rate_distortion = bench_module("rate_distortion", "scipy", "matplotlib")  # BD-rates, plots
    folder, out = tmp_path / "faces", tmp_path / "results"
    folder.mkdir()
    portrait = astronaut()
    images = [portrait[20:68, 160:208].copy(), portrait[300:348, 40:88].copy()]  # two: means over images
    for i, pixels in enumerate(images):
        Image.fromarray(pixels).save(folder / f"face{i}.png")
    (folder / "notes.txt").write_text("not an image: must be skipped")
    reference = tmp_path / "reference.csv"
    reference.write_text("codec,compression_ratio,psnr_db\njpeg,4,45\njpeg,20,32\njpeg2000,4,47\njpeg2000,20,34\n")

    threads = torch.get_num_threads()
    try:  # no warm-ups keep this fast; the timings are not checked
        result = CliRunner().invoke(rate_distortion.main, [str(folder), "--quick", "--out", str(out), "--threads", "2",
                                                           "--warm-ups", "0", "--reference", str(reference)])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output

    with (out / "rate_distortion.csv").open() as f:
        rows = list(csv.DictReader(f))
    lossy = [i for i in zoo.installed_ids() if not zoo.load_spec(i).family.lossless]   # lossless: lossless.py
    plugins = {name for name in ("jxl", "heic-444") if classical.CODECS[name].available()}   # the bench extra's
    assert {r["codec"] for r in rows} == {"jpeg-420", "jpeg-444", "jpeg2000", "webp", "avif-444", *plugins,
                                          *(f"fcz/{i}" for i in lossy)}
    for weights_id in lossy:  # the whole sweep of every lossy weights, even in --quick
        latent = zoo.load_spec(weights_id).family
        settings = [f"{latent.option}={s}" for s in latent.sweep()]
        assert sorted(r["setting"] for r in rows if r["codec"] == f"fcz/{weights_id}") == sorted(settings)
    for r in rows:
        bpp, ratio, psnr_db, ssim = (float(r[k]) for k in ("bpp", "compression_ratio", "psnr_db", "ssim"))
        assert int(r["images"]) == 2
        assert bpp > 0 and ratio == pytest.approx(24 / bpp, rel=1e-4)
        assert 10 < psnr_db < 70, r  # 60-odd dB: the wavelet family's finest quality on a 48x48 crop
        assert 0 < ssim <= 1
        assert float(r["encode_ms"]) > 0 and float(r["decode_ms"]) > 0

    def row(codec: str, setting: str) -> dict:
        return next(r for r in rows if r["codec"] == codec and r["setting"] == setting)

    jpeg_bpp, jpeg_psnr = _expected_bpp_and_psnr(images, _jpeg_q50, lambda d: Image.open(io.BytesIO(d)))
    assert float(row("jpeg-420", "quality=50")["bpp"]) == pytest.approx(jpeg_bpp, rel=1e-5)
    assert float(row("jpeg-420", "quality=50")["psnr_db"]) == pytest.approx(jpeg_psnr, rel=1e-5)
    # The default point is what facecodec.encode does with no quality, bits or weights given.
    default, setting = zoo.default_weights_id(), default_setting(zoo.default_weights_id())
    fcz_bpp, fcz_psnr = _expected_bpp_and_psnr(images, facecodec.encode, facecodec.decode)
    assert float(row(f"fcz/{default}", setting)["bpp"]) == pytest.approx(fcz_bpp, rel=1e-5)
    assert float(row(f"fcz/{default}", setting)["psnr_db"]) == pytest.approx(fcz_psnr, rel=1e-5)

    results = json.loads((out / "rate_distortion.json").read_text())
    assert results["metadata"]["images"] == 2 and results["metadata"]["quick"] is True
    assert results["metadata"]["torch_threads"] == 2
    assert results["metadata"]["default_setting"] == setting
    found = results["comparison"]
    assert (found["default_weights_id"], found["default_setting"]) == (default, setting)
    assert {c["codec"] for c in found["codecs"]} == {r["codec"] for r in rows} - {f"fcz/{default}"}
    margins = found["margins"]
    assert len(margins["points"]) == margins["compared"] + len(margins["outside_range"]) == \
        sum(r["codec"] == f"fcz/{default}" for r in rows)
    summary = (out / "summary.md").read_text()
    assert "BD-rate of fcz vs codec" in summary
    assert f"**{margins['above']} of {margins['compared']}** fcz points lie above the JPEG 2000 curve" in summary
    assert f"fcz's default curve is {'monotonic' if found['monotonic']['monotonic'] else '**not monotonic**'}" \
        in summary
    for name in ("rd_psnr_bpp.png", "rd_psnr_ratio.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")


def test_the_lossless_benchmark_counts_only_exact_codecs(tmp_path):
    """benchmarks/lossless.py on three faces, as PNGs and as JPEGs: every codec's decode is checked against the
    file's pixels, fcz's bytes are the real files' (its ratio column is 1), and JPEGs get the rows of the codecs
    that take the JPEG file itself."""
    from benchmarks import lossless

    for suffix in ("png", "jpg"):
        folder = tmp_path / suffix
        folder.mkdir()
        for k in range(3):
            Image.fromarray(astronaut()[20 + 10 * k:84 + 10 * k, 150:214]).save(folder / f"{k}.{suffix}")
        assert lossless.main([str(folder), "--out", str(tmp_path / f"out-{suffix}")]) == 0
        run = json.loads((tmp_path / f"out-{suffix}" / "lossless.json").read_text())["runs"][0]
        fcz = run["codecs"][lossless.FCZ]
        assert fcz["images"] == 3 and fcz["bytes_vs_fcz"] == 1.0
        assert all(not codec["inexact_images"] for codec in run["codecs"].values())
        expected = sum(len(facecodec.encode(p, lossless=True)) for p in sorted(folder.iterdir()))
        assert fcz["bytes"] == expected
        assert {"PNG (optimize)", "WebP lossless (method 6)", "JPEG 2000 reversible"} <= set(run["codecs"])
        assert ("the JPEG file itself" in run["codecs"]) == (suffix == "jpg")
    assert fcz["bytes"] < run["codecs"]["the JPEG file itself"]["bytes"]


# --- JPEG sources, the web-thumbnail set, the perceptual metrics ------------------------------------------------

def test_the_web_thumbnails_are_small_4_2_0_jpegs_made_the_same_way_each_time(tmp_path):
    from benchmarks.web_thumbnails import HEIGHTS, QUALITIES, WIDTHS, thumbnails
    from facecodec.jpeg_lattice import source_lattice

    for k in range(3):
        Image.fromarray(astronaut()[10 * k:200 + 10 * k, 100:300]).save(tmp_path / f"{k}.jpg", quality=95)
    made = thumbnails(folder=tmp_path)
    assert made == thumbnails(folder=tmp_path) and [m[1] for m in made] != [m[1] for m in thumbnails(folder=tmp_path, seed=1)]
    for name, data in made:
        image = Image.open(io.BytesIO(data))
        lattice = source_lattice(image)
        assert WIDTHS[0] <= image.width <= WIDTHS[1] and HEIGHTS[0] <= image.height <= HEIGHTS[1], name
        assert lattice.sampling == (2, 2) and QUALITIES[0] <= lattice.standard_quality() <= QUALITIES[1], name


def test_jpeg_sources_end_to_end(tmp_path, monkeypatch):
    """benchmarks/jpeg_sources.py on two JPEGs with a few points: fcz from the file carries the JPEG source block
    and the report holds both fcz curves' BD-rates."""
    jpeg_sources = bench_module("jpeg_sources", "scipy")
    from benchmarks.common import EXACT_PSNR_DB
    from benchmarks.operating_points import avif, fcz

    folder = tmp_path / "faces"
    folder.mkdir()
    for k in range(2):
        Image.fromarray(astronaut()[20 + 8 * k:116 + 8 * k, 170:266]).save(folder / f"{k}.jpg", quality=75)
    default = zoo.default_weights_id()
    few = [fcz(default, quality=q, from_file=f) for f in (False, True) for q in (30, 40, 70)] + \
        [avif(q) for q in (40, 60, 80, 90)]
    monkeypatch.setattr(jpeg_sources, "points", lambda: few)
    result = CliRunner().invoke(jpeg_sources.main, [str(folder), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    found = json.loads((tmp_path / "out" / "jpeg_sources_faces.json").read_text())
    assert found["metadata"]["images"] == 2
    by_codec = {(r["codec"], r["setting"]): r for r in found["points"]}
    plain, kept = by_codec[(f"fcz/{default}", "quality=40")], by_codec[(f"fcz/{default} (file)", "quality=40")]
    assert kept["file_bytes"] == plain["file_bytes"] + 4 and kept["psnr_db"] > plain["psnr_db"] + 1
    exact = by_codec[(f"fcz/{default} (file)", "quality=70")]   # smaller as the JPEG's own coefficients, kept exactly
    assert exact["psnr_db"] == EXACT_PSNR_DB and exact["file_bytes"] < by_codec[(f"fcz/{default}", "quality=70")]["file_bytes"]
    assert set(found["bd_rate"]) == {f"fcz/{default}", f"fcz/{default} (file)"}
    assert found["bd_rate"][f"fcz/{default} (file)"][f"fcz/{default}"] < 0
    assert "## BD-rate" in (tmp_path / "out" / "jpeg_sources_faces.md").read_text()


def test_ms_ssim_is_one_for_the_same_picture_and_falls_with_noise():
    perceptual = bench_module("perceptual", "scipy")
    face = astronaut()[:112, 150:246]
    rng = np.random.default_rng(0)
    noisy = [np.clip(face + rng.normal(0, s, face.shape), 0, 255).astype(np.uint8) for s in (1, 4, 12)]
    scores = [perceptual.ms_ssim(face, n) for n in noisy]
    assert perceptual.ms_ssim(face, face) == pytest.approx(1.0) and 1 > scores[0] > scores[1] > scores[2] > 0.5


def test_bytes_to_identity_takes_each_images_smallest_passing_file():
    perceptual = bench_module("perceptual", "scipy")
    rows = [{"codec": "x", "image": i, "bytes": b, "distance": d}
            for i, b, d in [(0, 100, 0.7), (0, 200, 0.5), (0, 300, 0.3), (1, 150, 0.55), (1, 250, 0.35),
                            (2, 120, 0.9), (2, 220, 0.8)]]
    found = perceptual.bytes_to_identity(rows)["x"]
    assert found["0.6"] == {"median_bytes": 175.0, "images": 2, "at_smallest": 1}   # 200 and 150 (at image 1's least)
    assert found["0.4"] == {"median_bytes": 275.0, "images": 2, "at_smallest": 0}


@pytest.fixture()
def fresh_plugins():
    """Plugins are looked up once per process: forget what this test's pretence finds, before and after it."""
    classical._plugin_registered.cache_clear()
    yield
    classical._plugin_registered.cache_clear()


def test_a_plugin_codec_without_its_plugin_says_so(monkeypatch, fresh_plugins):
    import sys

    monkeypatch.setitem(sys.modules, "pillow_heif", None)   # as if pillow-heif were not installed
    heic = classical.CODECS["heic-444"]
    assert heic.available() is False
    with pytest.raises(OSError, match="needs the Pillow plugin pillow_heif"):
        heic.encode(astronaut()[:16, :16], 50)


def test_every_mutation_still_applies_to_the_code_it_breaks():
    """benchmarks/mutation_check.py replaces one exact piece of source per mutation: a refactor that moves that text
    leaves the mutation unable to run (two had gone stale that way), so each must occur exactly once, and its tests
    must exist."""
    from benchmarks.mutation_check import MUTATIONS, ROOT

    for mutation in MUTATIONS:
        assert (ROOT / mutation.path).read_text().count(mutation.old) == 1, mutation.name
        assert all((ROOT / test).is_file() for test in mutation.tests), mutation.name
