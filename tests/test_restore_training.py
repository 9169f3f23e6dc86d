"""train_restore.py and export_restore.py end to end on a tiny network and six 64x64 faces: seconds, not minutes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from facecodec import restoration, zoo
from facecodec.restoration import CONDITIONS
from facecodec.train import export_restore, train_restore
from facecodec.train.config import ConfigError, load_config

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
    entry = exported(tiny_run / "w")[0]
    assert entry["kind"] == "restore" and entry["conditions"] == list(CONDITIONS)
    assert entry["stage1"]["steps"] == 4 and entry["validation"]["step"] == 4
    tensors = load_file(tiny_run / "w/tiny-restore-v1.safetensors")
    assert all(t.dtype == torch.float16 for t in tensors.values() if t.is_floating_point())
    model = load_config("restore.toml").build_model()
    model.load_state_dict({name: t.float() if t.is_floating_point() else t for name, t in tensors.items()})


def test_stage_2_fine_tunes_stage_1_with_its_condition_weights_and_is_what_exports(tiny_run):
    config = (tiny_run / "restore.toml").read_text()
    stage2 = config[config.index("[stage1]"):].replace("[stage1]", "[stage2]").replace("lr = 1e-3", "lr = 1e-4")
    (tiny_run / "restore.toml").write_text(config + "\n" + stage2 + 'conditions = { inpaint = 1, denoise = 0.5 }\n')
    with pytest.raises(SystemExit, match="run --stage 1 first"):
        train_restore.main(["restore.toml", "--stage", "2", "--threads", "1", "--runs-dir", "runs"])
    train_restore.main(["restore.toml", "--threads", "1", "--runs-dir", "runs"])
    train_restore.main(["restore.toml", "--stage", "2", "--threads", "1", "--runs-dir", "runs"])
    stage1, stage2 = (torch.load(tiny_run / f"runs/tiny-restore/stage{n}.pt", weights_only=True) for n in (1, 2))
    assert stage2["step"] == 4 and not torch.equal(stage1["model"]["first.weight"], stage2["model"]["first.weight"])

    export_restore.main(["restore.toml", "--id", "tiny-restore-v2", "--runs-dir", "runs", "--weights-dir", "w"])
    entry = exported(tiny_run / "w")[0]
    assert entry["stage1"]["steps"] == 4 and entry["stage2"]["steps"] == 4
    tensors = load_file(tiny_run / "w/tiny-restore-v2.safetensors")
    torch.testing.assert_close(tensors["first.weight"].float(), stage2["model"]["first.weight"], atol=1e-3, rtol=1e-3)


def test_condition_weights_set_each_share_and_are_checked():
    shares = train_restore.condition_frequencies({"inpaint": 3, "deblur": 1}, "here")
    assert shares.sum() == pytest.approx(1) and shares[CONDITIONS.index("denoise")] == 0  # left out: not trained
    assert shares[CONDITIONS.index("inpaint")] == pytest.approx(3 * shares[CONDITIONS.index("deblur")])
    assert np.allclose(train_restore.condition_frequencies(None, "here"), 1 / len(CONDITIONS))
    with pytest.raises(ConfigError, match="unknown conditions inpant"):
        train_restore.condition_frequencies({"inpant": 2}, "here")
    with pytest.raises(ConfigError, match="numbers >= 0"):
        train_restore.condition_frequencies({"inpaint": -1}, "here")
    with pytest.raises(ConfigError, match="not all 0"):
        train_restore.condition_frequencies({c: 0 for c in CONDITIONS}, "here")


def test_a_specialist_starts_from_installed_weights_and_serves_only_its_task(tiny_run):
    shipped = zoo.manifest_entry(zoo.default_restore_id(), zoo.RESTORE)
    model = "\n".join(f"{key} = {json.dumps(value)}" for key, value in shipped["model"].items())
    config = CONFIG.format(precision="fp32").replace("seed = 1", f'seed = 1\ninit_weights = "{shipped["id"]}"')
    config = config[:config.index("[model]")] + "[model]\n" + model + "\n\n" + config[config.index("[data]"):]
    (tiny_run / "restore.toml").write_text(config.replace("steps = 4", "steps = 1").replace("crop = 32", "crop = 16")
                                           .replace("batch_size = 8", "batch_size = 2")
                                           + "[stage1.conditions]\ndejpeg = 1\n")
    train_restore.main(["restore.toml", "--threads", "1", "--runs-dir", "runs"])
    export_restore.main(["restore.toml", "--id", "tiny-dejpeg-v1", "--runs-dir", "runs", "--weights-dir", "w"])
    entry = exported(tiny_run / "w")[0]
    assert entry["serves"] == ["dejpeg"] and entry["init_weights"] == shipped["id"]
    start = restoration.load("cpu", shipped["id"]).model.state_dict()["first.weight"]
    trained = torch.load(tiny_run / "runs/tiny-restore/stage1.pt", weights_only=True)["model"]["first.weight"]
    assert (trained - start).abs().max() < 0.01  # one small step from the installed network, not from scratch


def test_init_weights_must_match_the_config_network(tiny_run):
    config = CONFIG.format(precision="fp32").replace("seed = 1", f'seed = 1\ninit_weights = "{zoo.default_restore_id()}"')
    (tiny_run / "restore.toml").write_text(config)
    with pytest.raises(SystemExit, match="not this config's \\[model\\]"):
        train_restore.main(["restore.toml", "--threads", "1", "--runs-dir", "runs"])


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


def exported(weights_dir) -> list[dict]:
    """An export's manifest entries in ``weights_dir``, each with its model card's record (facecodec.train.cards):
    the manifest holds only the fields the runtime reads."""
    from facecodec.train.cards import RUNTIME_FIELDS, card_record

    entries = json.loads((Path(weights_dir) / "manifest.json").read_text())["weights"]
    assert all(set(entry) <= set(RUNTIME_FIELDS) for entry in entries)
    return [{**card_record(weights_dir, entry["id"]), **entry} for entry in entries]
