"""Learned lifting (facecodec.models.lifting): zero-initialised it is the fixed wavelet; any weights invert;
the encoder's exact residuals, the decoder's fast ones and the training transform agree."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facecodec.models import wavelet_transform as wt
from facecodec.models.lifting import LearnedLifting

SHAPES = [(1, 1), (2, 3), (5, 4), (17, 33), (31, 16), (101, 97)]


def ycc(shape, seed=0) -> np.ndarray:
    return wt.rgb_to_ycc(np.random.default_rng(seed).uniform(0, 255, (3, *shape)).astype(np.float32))


def trained_looking(levels: int = 2, hidden: int = 8, seed: int = 1) -> LearnedLifting:
    """Random weights of the size training gives them, so the residuals change the coefficients."""
    torch.manual_seed(seed)
    lifting = LearnedLifting(levels, hidden)
    with torch.no_grad():
        for p in lifting.parameters():
            p.normal_(0, 0.05)
    return lifting


@pytest.mark.parametrize("shape", SHAPES)
def test_zero_initialised_lifting_equals_the_fixed_wavelet(shape):
    planes = ycc(shape)
    lifting = LearnedLifting(learned_levels=4)
    fixed = wt.forward_2d(planes)
    for exact in (True, False):      # the codec's numpy transform with the residuals: bit for bit
        assert np.array_equal(wt.forward_2d(planes, residuals=lifting.steps(exact)), fixed)
        assert np.array_equal(wt.inverse_2d(fixed, residuals=lifting.steps(exact)), wt.inverse_2d(fixed))
    with torch.no_grad():            # the training transform, to float rounding
        y = lifting(torch.from_numpy(planes)[None])[0].numpy()
        back = lifting.inverse(torch.from_numpy(y)[None])[0].numpy()
    np.testing.assert_allclose(y, fixed, atol=1e-3, rtol=1e-5)
    np.testing.assert_allclose(back, wt.inverse_2d(fixed), atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_any_weights_invert(shape):
    lifting = trained_looking(levels=4)
    x = ycc(shape, 2)
    y = wt.forward_2d(x, residuals=lifting.steps(exact=True))
    if min(shape) >= 4:
        assert np.abs(y - wt.forward_2d(x)).max() > 0.1
    np.testing.assert_allclose(wt.inverse_2d(y, residuals=lifting.steps(exact=False)), x, atol=2e-3)
    with torch.no_grad():
        t = lifting(torch.from_numpy(x)[None])
        np.testing.assert_allclose(lifting.inverse(t)[0].numpy(), x, atol=2e-3)


@pytest.mark.parametrize("shape", [(17, 33), (64, 64), (101, 97)])
def test_exact_fast_and_training_residuals_agree(shape):
    lifting = trained_looking()
    x = ycc(shape, 3)
    exact = wt.forward_2d(x, residuals=lifting.steps(exact=True))
    np.testing.assert_allclose(wt.forward_2d(x, residuals=lifting.steps(exact=False)), exact, atol=2e-3, rtol=1e-5)
    with torch.no_grad():
        np.testing.assert_allclose(lifting(torch.from_numpy(x)[None])[0].numpy(), exact, atol=2e-3, rtol=1e-5)


def test_exact_residuals_do_not_depend_on_threads_or_blocks(monkeypatch):
    lifting = trained_looking()
    x = ycc((70, 90), 4)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = wt.forward_2d(x, residuals=lifting.steps(exact=True))
        torch.set_num_threads(2)
        assert np.array_equal(wt.forward_2d(x, residuals=lifting.steps(exact=True)), one)
    finally:
        torch.set_num_threads(threads)
    from facecodec.models import lifting as module
    monkeypatch.setattr(module, "_conv3x3", lambda x, w, b, rows_per_block=5, f=module._conv3x3: f(x, w, b, rows_per_block))
    assert np.array_equal(wt.forward_2d(x, residuals=lifting.steps(exact=True)), one)


def test_gradients_reach_every_residual():
    lifting = LearnedLifting(learned_levels=2, hidden=4)
    lifting(torch.from_numpy(ycc((32, 32)))[None]).abs().sum().backward()
    outer = [m.outer.weight.grad for m in lifting.modules() if hasattr(m, "outer")]
    assert len(outer) == 16 and all(g.abs().sum() > 0 for g in outer)


def test_the_table_builder_counts_through_and_ships_the_lifting(tmp_path, odd_face):
    from PIL import Image
    from safetensors.numpy import load_file
    from safetensors.torch import save_file
    from skimage.data import astronaut

    from facecodec.models import build_model
    from facecodec.train import wavelet_tables

    faces = tmp_path / "faces"
    faces.mkdir()
    for k, (top, left) in enumerate([(0, 0), (100, 200), (250, 300)]):
        Image.fromarray(astronaut()[top:top + 64, left:left + 64]).save(faces / f"{k}.png")
    lifting = trained_looking(levels=1)
    save_file({n: t.half() for n, t in lifting.state_dict().items()}, str(tmp_path / "lifting.safetensors"),
              metadata={"learned_levels": "1", "hidden": "8", "steps": "7", "seconds": "1"})
    out = tmp_path / "weights"
    out.mkdir()
    wavelet_tables.main(["--train", str(faces), "--images", "3", "--scheme", "2", "--id", "test-v3",
                         "--weights-dir", str(out), "--filter-from", "wavelet-v2",
                         "--lifting-from", str(tmp_path / "lifting.safetensors")])
    entry = exported(out)[0]
    assert entry["model"]["lifting_levels"] == 1 and entry["lifting"] == {"steps": 7, "seconds": 1}
    tensors = load_file(out / "test-v3.safetensors")
    model = build_model("wavelet", channels=3, **entry["model"])
    model.load_state_dict({n: torch.from_numpy(a.astype(np.float32) if a.dtype.kind == "f" else a)
                           for n, a in tensors.items() if not n.startswith("entropy.")})
    x = odd_face.transpose(2, 0, 1).astype(np.float32)
    y = wt.analysis(x, residuals=model.residuals(exact=True))
    assert np.abs(y - wt.analysis(x)).max() > 0.1                                # the residuals are in the encoder
    np.testing.assert_allclose(wt.synthesis(y, residuals=model.residuals(exact=False)), x, atol=255e-4)  # undone


def test_the_trainer_quantizes_as_the_codec_does():
    from facecodec.train.train_lifting import quantized

    u = np.random.default_rng(5).normal(0, 3, (3, 40, 36)).astype(np.float32)
    ones = np.ones((3, 5, 3), dtype=np.float32)
    expected = wt.dequantize(wt.quantize(u, ones, 0.25), ones, 0.2)
    ll = torch.from_numpy(wt.ll_mask(40, 36))
    leaf = torch.from_numpy(u)[None].requires_grad_()
    got = quantized(leaf, ll, (0.25, 0.2))
    np.testing.assert_allclose(got[0].detach().numpy(), expected, atol=1e-6)
    upstream = torch.from_numpy(np.random.default_rng(6).normal(0, 1, got.shape).astype(np.float32))
    got.backward(upstream)           # straight through: the identity's gradient, so any gradient passes unchanged
    assert torch.equal(leaf.grad, upstream)


def test_the_trainer_resumes_and_exports_what_the_table_builder_reads(tmp_path, capsys, monkeypatch):
    from PIL import Image
    from skimage.data import astronaut

    from facecodec.train.wavelet_tables import load_lifting
    from facecodec.train import train_lifting

    faces = tmp_path / "faces"
    faces.mkdir()
    for k in range(3):
        Image.fromarray(astronaut()[40 * k:40 * k + 80, 150:230]).save(faces / f"{k}.png")
    run = ["--train", str(faces), "--images", "3", "--batch", "2", "--crop", "32", "--threads", "1",
           "--out", str(tmp_path / "run"), "--save-every", "2"]
    checkpoint, saved_at = tmp_path / "run" / "lifting.pt", []
    real_save = train_lifting.checkpoints.save
    monkeypatch.setattr(train_lifting.checkpoints, "save",
                        lambda path, model, optimizer, step, elapsed: saved_at.append(step)
                        or real_save(path, model, optimizer, step, elapsed))
    train_lifting.main(run + ["--steps", "2"])
    assert "resuming" not in capsys.readouterr().out and saved_at == [2]
    train_lifting.main(run + ["--steps", "3", "--postfilter-from", "wavelet-v1"])
    assert capsys.readouterr().out.splitlines()[0] == f"resuming {checkpoint} at step 2"
    assert saved_at == [2, 3]  # it went on from step 2: from scratch it would have saved at step 2 again
    saved = torch.load(checkpoint)
    assert saved["step"] == 3 and {int(state["step"]) for state in saved["optimizer"]["state"].values()} == {3}
    train_lifting.main(run + ["--export", str(tmp_path / "lifting.safetensors")])
    lifting, meta = load_lifting(tmp_path / "lifting.safetensors")
    assert meta["steps"] == "3" and lifting.learned_levels == 1
    assert any(p.abs().sum() > 0 for name, p in lifting.named_parameters() if "outer" in name)   # it learned


def exported(weights_dir) -> list[dict]:
    """An export's manifest entries in ``weights_dir``, each with its model card's record (facecodec.train.cards):
    the manifest holds only the fields the runtime reads."""
    from facecodec.train.cards import RUNTIME_FIELDS, card_record

    entries = json.loads((Path(weights_dir) / "manifest.json").read_text())["weights"]
    assert all(set(entry) <= set(RUNTIME_FIELDS) for entry in entries)
    return [{**card_record(weights_dir, entry["id"]), **entry} for entry in entries]
