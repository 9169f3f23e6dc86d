"""Things a user must be able to rely on: same file whatever the thread count, no partial files, checked weights."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

import facecodec
from facecodec import zoo
from facecodec.bitstream import FczError, decode_symbols, unpack


def _encode_with_threads(image: np.ndarray, threads: int, **setting) -> bytes:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return facecodec.encode(image, **setting)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("setting", [{"quality": 1}, {"quality": 8}, {"bits": 6}])
def test_file_and_symbols_do_not_depend_on_thread_count(face, setting):
    one, two = _encode_with_threads(face, 1, **setting), _encode_with_threads(face, 2, **setting)
    assert one == two
    header, payload = unpack(one)
    tables = zoo.load_weights(header.weights_id).entropy_tables[header.table_name]
    assert np.array_equal(decode_symbols(payload, tables, header.latent_shape[1:]),
                          decode_symbols(unpack(two)[1], tables, header.latent_shape[1:]))


def test_decoded_pixels_agree_across_thread_counts(face):
    data = facecodec.encode(face)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = np.asarray(facecodec.decode(data), dtype=np.int16)
        torch.set_num_threads(2)
        two = np.asarray(facecodec.decode(data), dtype=np.int16)
    finally:
        torch.set_num_threads(before)
    assert np.abs(one - two).max() <= 1  # float rounding may move a pixel by one level, never more


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_encode_leaves_no_output(tmp_path, sig):
    source = tmp_path / "big.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (3072, 3072, 3), dtype=np.uint8)).save(source, compress_level=1)
    target = tmp_path / "big.fcz"
    process = subprocess.Popen([sys.executable, "-m", "facecodec.cli", "encode", str(source), "-o", str(target)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(4)  # imports and weights loaded; the network is running
    assert process.poll() is None, "encode finished before it could be killed; use a larger image"
    process.send_signal(sig)
    process.wait(timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png"]


def test_damaged_weights_are_refused(monkeypatch, face):
    real = zoo.manifest()
    forged = {**real, "weights": [{**e, "sha256": "0" * 64} for e in real["weights"]]}
    monkeypatch.setattr(zoo, "manifest", lambda: forged)
    zoo.load_weights.cache_clear()
    try:
        with pytest.raises(FczError, match="damaged"):
            facecodec.encode(face)
    finally:
        zoo.load_weights.cache_clear()
