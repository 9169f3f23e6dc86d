"""train_restore.py and export_restore.py end to end on a tiny network and six 64x64 faces: seconds, not minutes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from facecodec.restoration import CONDITIONS
from facecodec.train import export_restore, train_restore
from facecodec.train.config import load_config

CONFIG = """
name = "tiny-restore"
architecture = "restore"
seed = 1

[model]
first_features = 8
growth = 4
down = [1, 1]
bottleneck = 1
up = [1, 1]

[data]
train = "data/train"
val = "data/val"
val_images = 2

[stage1]
steps = 4
batch_size = 8
crop = 32
max_scale = 1.5
lr = 1e-3
lr_final = 1e-4
weight_decay = 1e-5
precision = "{precision}"
eval_every = 2
"""


@pytest.fixture()
def tiny_run(tmp_path, write_tiny_faces, monkeypatch, keep_torch_threads) -> Path:
    write_tiny_faces(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "restore.toml").write_text(CONFIG.format(precision="fp32"))
    return tmp_path


def test_a_stopped_run_resumes_logs_every_condition_and_exports(tiny_run, capsys):
    with pytest.raises(SystemExit, match="stopped .--stop-at. at step 2 of 4"):
        train_restore.main(["restore.toml", "--threads", "1", "--stop-at", "2", "--runs-dir", "runs"])
    train_restore.main(["restore.toml", "--threads", "1", "--runs-dir", "runs"])
    assert "resuming" in capsys.readouterr().out
    records = [json.loads(line) for line in (tiny_run / "runs/tiny-restore/stage1.log").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert set(records[-1]["val_psnr"]) == {*CONDITIONS, "mean"}

    export_restore.main(["restore.toml", "--id", "tiny-restore-v1", "--runs-dir", "runs", "--weights-dir", "w"])
    entry = json.loads((tiny_run / "w/manifest.json").read_text())["weights"][0]
    assert entry["kind"] == "restore" and entry["conditions"] == list(CONDITIONS)
    assert entry["stage1"]["steps"] == 4 and entry["validation"]["step"] == 4
    tensors = load_file(tiny_run / "w/tiny-restore-v1.safetensors")
    assert all(t.dtype == torch.float16 for t in tensors.values() if t.is_floating_point())
    model = load_config("restore.toml").build_model()
    model.load_state_dict({name: t.float() if t.is_floating_point() else t for name, t in tensors.items()})


def test_bf16_training_runs_too(tiny_run):
    (tiny_run / "restore.toml").write_text(CONFIG.format(precision="bf16"))
    train_restore.main(["restore.toml", "--threads", "1", "--runs-dir", "runs"])
    assert (tiny_run / "runs/tiny-restore/stage1.pt").exists()


@pytest.mark.parametrize("change,replacement,message", [
    ('precision = "fp32"', 'precision = "fp8"', "precision` must be one of bf16, fp32"),
    ("crop = 32", "crop = 30", "not a multiple of the network's stride 4"),
    ("weight_decay = 1e-5", "", "needs `stage1.weight_decay`")])
def test_config_mistakes_are_one_line_errors_naming_them(tiny_run, change, replacement, message):
    (tiny_run / "restore.toml").write_text(CONFIG.format(precision="fp32").replace(change, replacement))
    with pytest.raises(SystemExit, match=f"^error: .*{message}"):
        train_restore.main(["restore.toml", "--threads", "1", "--runs-dir", "runs"])
