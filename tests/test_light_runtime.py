"""The default weights run without torch: numpy for the transform, ONNX Runtime for the post-filter.

A child process blocks ``import torch`` (``sys.modules["torch"] = None`` makes it raise ImportError, as on a light
install) and encodes, decodes and reads headers through the API, the command line and the Pillow plugin; its bytes
must be this process's (which has torch) and its pixels too. The post-filter's ONNX graph must compute what the
torch module computes from the same weights file.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from skimage.data import astronaut

import facecodec
from facecodec import codec, zoo
from facecodec.bitstream import unpack
from facecodec.models.postfilter import PostFilter
from facecodec.models.postfilter_onnx import OnnxPostFilter
from facecodec.models.wavelet_network import TorchPostFilter
from facecodec.models.wavelet_runtime import WaveletRuntime

WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None  # import torch now raises ImportError, as where it is not installed
import hashlib, io, json, os
from PIL import Image
from click.testing import CliRunner
import facecodec
from facecodec.cli import main

face = Image.open(sys.argv[1])
data = facecodec.encode(face)
decoded = facecodec.decode(data)
runner = CliRunner()
cli_data = runner.invoke(main, ["encode", sys.argv[1], "-o", "-"]).stdout_bytes
info = json.loads(runner.invoke(main, ["info", "-", "--json"], input=data).stdout)[0]
plugin = io.BytesIO()
Image.open(io.BytesIO(data)).save(plugin, "PNG")
print(json.dumps({"fcz": hashlib.sha256(data).hexdigest(), "cli": hashlib.sha256(cli_data).hexdigest(),
                  "pixels": hashlib.sha256(decoded.tobytes()).hexdigest(),
                  "plugin": hashlib.sha256(Image.open(plugin).tobytes()).hexdigest(),
                  "info": [info["weights_id"], info["quality"]], "torch": "torch" in sys.modules and
                  sys.modules["torch"] is not None}))
"""


@pytest.fixture(scope="module")
def face_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("light") / "face.png"
    from PIL import Image

    Image.fromarray(astronaut()[20:180, 150:294]).save(path)
    return path


def test_the_default_weights_encode_decode_and_show_info_without_torch(face_png):
    child = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, str(face_png)], capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == 0, child.stderr
    got = json.loads(child.stdout)
    data = facecodec.encode(face_png)      # this process has torch: the same bytes and pixels
    import hashlib

    assert got["fcz"] == got["cli"] == hashlib.sha256(data).hexdigest()
    assert got["pixels"] == got["plugin"] == hashlib.sha256(facecodec.decode(data).tobytes()).hexdigest()
    assert got["info"] == [zoo.default_weights_id(), 50] and not got["torch"]


def test_the_default_path_never_imports_torch_even_where_it_is_installed(face_png):
    script = ("import sys, facecodec; data = facecodec.encode(sys.argv[1]); facecodec.decode(data); "
              "facecodec.read_header(data); print('torch' in sys.modules)")
    child = subprocess.run([sys.executable, "-c", script, str(face_png)], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "False"


def test_what_needs_torch_says_so_in_one_line_without_it(face_png):
    script = ("import sys; sys.modules['torch'] = None\nimport facecodec\n"
              "for call in (lambda: facecodec.encode(sys.argv[1], weights_id='gained-q8-v1'),\n"
              "             lambda: facecodec.restore(sys.argv[1], task='denoise')):\n"
              "    try:\n        call()\n    except facecodec.FczError as e:\n        print(e)\n")
    child = subprocess.run([sys.executable, "-c", script, str(face_png)], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    assert len(lines) == 2 and all("needs PyTorch" in line and "facecodec[torch]" in line for line in lines), lines


def torch_runtime(weights_id: str) -> zoo.Weights:
    """The weights with their post-filter run by torch on the CPU instead of ONNX Runtime."""
    weights, model = zoo.load_weights(weights_id, "cpu"), zoo.manifest_entry(weights_id)["model"]
    runtime = weights.transform
    postfilter = TorchPostFilter(zoo.weights_tensors(weights_id), model["qualities"], model["postfilter_hidden"],
                                 model["postfilter_layers"], "cpu")
    torch_path = WaveletRuntime(runtime.steps, runtime.recon_offset, runtime.rounding_offset, runtime.residuals,
                                postfilter)
    return zoo.Weights(**{**vars(weights), "model": torch_path, "transform": torch_path})


def test_the_onnx_post_filter_gives_the_torch_modules_pixels_within_one_level(face):
    """Measured on 40 val faces at qualities 1..80: at most 1 level apart, on 3 values in a million."""
    weights = zoo.load_weights(zoo.default_weights_id(), "cpu")
    reference = torch_runtime(weights.weights_id)
    differing = total = 0
    for quality in (1, 20, 50):
        header, payload = unpack(facecodec.encode(face, quality=quality))
        features = codec.part_features(weights, weights.table(header), header, payload)
        ours = codec.synthesise(weights, features).astype(np.int16)
        theirs = codec.synthesise(reference, features).astype(np.int16)
        plain = WaveletRuntime(weights.transform.steps, weights.transform.recon_offset,
                               weights.transform.rounding_offset).synthesise(features).astype(np.int16)
        assert np.abs(ours - theirs).max() <= 1
        assert np.abs(ours - plain).max() > 1   # the filter ran: the check above means something
        differing, total = differing + np.count_nonzero(ours != theirs), total + ours.size
    assert differing <= total // 1000


def test_the_numpy_conditioning_is_the_modules():
    module = PostFilter(qualities=8, hidden=8, layers=4)
    with torch.no_grad():
        module.embedding.normal_()
    onnx = OnnxPostFilter(b"", module.embedding.detach().numpy())
    levels = np.array([1, 2.5, 4, 0.2, 9.0, -0.5, 7.99], dtype=np.float32)
    np.testing.assert_allclose(onnx.conditioning(levels), module.conditioning(torch.from_numpy(levels)).detach().numpy(),
                               rtol=0, atol=1e-6)
    assert onnx.margin == module.margin


def test_a_damaged_post_filter_graph_is_refused(monkeypatch, face):
    """The graph is checked against the manifest's SHA-256 like the weights file (facecodec.zoo)."""
    import functools

    real = zoo.manifest()
    forged = {**real, "weights": [{**e, "postfilter_graph": {**e["postfilter_graph"], "sha256": "0" * 64}}
                                  if "postfilter_graph" in e else e for e in real["weights"]]}
    data = facecodec.encode(face)
    monkeypatch.setattr(zoo, "manifest", functools.lru_cache(maxsize=1)(lambda: forged))
    zoo.clear_caches()
    try:
        with pytest.raises(facecodec.FczError, match=r"weights file postfilter-\w+\.onnx is damaged"):
            facecodec.decode(data)
    finally:
        zoo.clear_caches()
