"""The training pipeline end to end on tiny runs: config, train, resume, export, load through the zoo, the series.

Everything runs in a temporary working directory holding a few 64x64 crops of
scikit-image's astronaut as "data", with tiny models (4-8 latent channels), a few
steps per stage. The commands' main() run in-process except where the command
line itself is the subject (a one-line error, the series' training subprocesses).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file

from facecodec import codec, zoo
from facecodec.families import family_class
from facecodec.metrics import psnr
from facecodec.train import export, series, train, train_rd, train_restore
from facecodec.train.config import ConfigError, Config, load_config
from facecodec.zoo import RESTORE, manifest_entry

TRAIN_DIR = Path(train.__file__).resolve().parent

THEIS = """\
name = "tiny-theis"
architecture = "theis"
seed = 1

[model]
channels = 4
res_blocks = 1

[data]
train = "data/train"
val = "data/val"
val_images = 2
calibration_images = 4

[stage1]
steps = 4
batch_size = 2
crop = 32
max_scale = 1.5
lr = 1e-3
lr_final = 1e-4
eval_every = 2

[stage2]
steps = 2
batch_size = 2
crop = 64
max_scale = 1.0
lr = 1e-4
lr_final = 1e-5
bits = 5
eval_every = 2
"""

GAINED = """\
name = "tiny-gained"
architecture = "gained"
seed = 1
lambdas = [0.01, 0.04, 0.16]

[model]
channels = 8
hidden = 8
levels = 3

[data]
train = "data/train"
val = "data/val"
val_images = 2

[stage1]
steps = 2
batch_size = 2
crop = 32
max_scale = 1.5
lr = 1e-3
lr_final = 1e-4
clip_grad_norm = 1.0
eval_every = 2

[stage2]
steps = 2
batch_size = 2
crop = 32
max_scale = 1.0
lr = 1e-4
lr_final = 1e-5
clip_grad_norm = 1.0
eval_every = 2
"""

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, write_tiny_faces) -> Path:
    """A working directory with data/train (6 faces), data/val (2) and the two tiny configs in configs/."""
    root = tmp_path_factory.mktemp("work")
    write_tiny_faces(root)
    (root / "configs").mkdir()
    (root / "configs" / "theis.toml").write_text(THEIS)
    (root / "configs" / "gained.toml").write_text(GAINED)
    return root


@pytest.fixture(scope="module")
def theis_run(workdir) -> Path:
    """Stage 1 of the tiny Theis config stopped at step 2 and resumed to 4, then stage 2: default runs dir."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        config = "configs/theis.toml"
        with pytest.raises(SystemExit, match="stopped at step 2 of 4"):
            train.main([config, "--stage", "1", "--threads", "1", "--stop-at", "2"])
        first = torch.load(workdir / "train/runs/tiny-theis/stage1.pt", weights_only=True)
        train.main([config, "--stage", "1", "--threads", "1"])
        train.main([config, "--stage", "2", "--threads", "1"])
    (workdir / "stage1-at-step-2.json").write_text(json.dumps({"step": first["step"], "elapsed_s": first["elapsed_s"]}))
    return workdir / "train" / "runs" / "tiny-theis"


@pytest.fixture(scope="module")
def gained_run(workdir) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        for stage in ("1", "2"):
            train_rd.main(["configs/gained.toml", "--stage", stage, "--threads", "1"])
    return workdir / "train" / "runs" / "tiny-gained"


# --- config ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((TRAIN_DIR / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_fit_the_one_schema(path):
    config = load_config(path, check_data=False)
    assert isinstance(config, Config) and config.path == path
    model = config.build_model()
    raw = tomllib.loads(path.read_text())
    for n in (1, 2):
        if f"stage{n}" in raw:
            assert config.stage(n).steps == raw[f"stage{n}"]["steps"] and config.stage(n).lr == raw[f"stage{n}"]["lr"]
    if config.architecture == "theis":  # what the Theis configs train did not change when channels moved
        assert model.channels == config.model["channels"]
        assert set(config.model) == {"channels"} and config.stage2.bits == 6 and config.lambdas is None
        assert config.data.calibration_images == 500
    elif config.architecture == "gained":
        assert model.channels == config.model["channels"]
        assert len(config.lambdas) == model.levels == 8 and config.stage1.clip_grad_norm == 1.0
    elif config.architecture == "wavelet":  # the post-filter's stage 2 on installed wavelet weights
        assert config.stage1 is None and model.postfilter is not None
        assert manifest_entry(config.init_weights)["architecture"] == "wavelet"
    elif config.architecture == "restore":  # fcz restore's networks: damage drawn in the trainer, weights by condition
        assert config.stage1.batch_size >= 1 and sum(p.numel() for p in model.parameters()) > 0
        for stage in filter(None, (config.stage1, config.stage2)):
            assert train_restore.condition_frequencies(stage.conditions, path.name).sum() == pytest.approx(1)
        if config.init_weights:  # a specialist: the installed network it is fine-tuned from has its [model]
            assert manifest_entry(config.init_weights, RESTORE)["model"] == config.model
    else:
        pytest.fail(f"{path.name}: no schema check for architecture {config.architecture!r}")


def test_relative_data_paths_count_from_the_current_directory(workdir, tmp_path, monkeypatch):
    monkeypatch.chdir(workdir)
    config = load_config("configs/theis.toml")
    assert config.data.train == workdir / "data" / "train" and config.data.val == workdir / "data" / "val"
    assert config.path == workdir / "configs" / "theis.toml"
    monkeypatch.chdir(tmp_path)  # the same config from elsewhere names other folders, which are not there
    with pytest.raises(ConfigError, match=r"`data.train` = .* does not exist"):
        load_config(workdir / "configs" / "theis.toml")
    assert load_config(workdir / "configs" / "theis.toml", base=workdir).data.train == workdir / "data" / "train"


@pytest.mark.parametrize("edit, message", [
    (("seed = 1", "seed = 1\nchanels = 4"), "unknown key `chanels`"),
    (("lr_final = 1e-4", "lr_fnal = 1e-4"), "unknown key `stage1.lr_fnal`"),
    (("res_blocks = 1", "res_block = 1"), "unknown key `model.res_block`"),
    (("val_images = 2", "val_images = 2\nvalidation = 3"), "unknown key `data.validation`"),
    (("steps = 4", 'steps = "4"'), "`stage1.steps` must be an integer"),
    (("lr = 1e-3\n", ""), "missing key `stage1.lr`"),
    (("eval_every = 2\n\n", "eval_every = 0\n\n"), "`stage1.eval_every` must be at least 1"),
    (('architecture = "theis"', 'architecture = "thesis"'), "unknown `architecture` 'thesis'"),
    (("name =", "name ="), None),  # control: the unedited config loads
])
def test_config_schema_errors_name_the_key(workdir, tmp_path, edit, message):
    path = tmp_path / "edited.toml"
    path.write_text(THEIS.replace(*edit, 1))
    if message is None:
        assert load_config(path, base=workdir).model == {"channels": 4, "res_blocks": 1}
        return
    with pytest.raises(ConfigError, match=message):
        load_config(path, base=workdir)


def test_a_trainer_names_the_keys_it_needs(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    with pytest.raises(SystemExit, match="train_rd.py needs `lambdas`"):
        train_rd.main(["configs/theis.toml", "--stage", "1", "--threads", "1", "--runs-dir", "unused"])


def test_missing_data_folder_is_a_one_line_error(workdir, tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "theis.toml").write_text(THEIS)  # data/train is relative to tmp_path: not there
    done = subprocess.run([sys.executable, "-m", "facecodec.train.train", "configs/theis.toml", "--stage", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "data.train" in done.stderr and str(tmp_path / "data" / "train") in done.stderr
    assert not (tmp_path / "train").exists()  # nothing started


# --- training: where runs go, resuming -------------------------------------------------------------------


def test_runs_go_under_the_current_directory_not_the_package(theis_run, workdir):
    assert sorted(p.name for p in theis_run.iterdir()) == ["stage1.log", "stage1.pt", "stage2-5bit.log",
                                                         "stage2-5bit.pt"]
    assert list((workdir / "train" / "runs" / "cache").glob("*.npy"))  # the decoded images, beside the runs
    assert not (TRAIN_DIR / "runs" / "tiny-theis").exists()


def test_resume_continues_at_the_saved_step(theis_run, workdir, monkeypatch):
    first = json.loads((workdir / "stage1-at-step-2.json").read_text())
    resumed = torch.load(theis_run / "stage1.pt", weights_only=True)
    assert first["step"] == 2 and resumed["step"] == 4
    assert resumed["elapsed_s"] >= first["elapsed_s"]  # time adds up across the two sessions
    log = [json.loads(line) for line in (theis_run / "stage1.log").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]  # no step trained twice, none skipped
    # Adam carried on from its saved state instead of starting again: 4 updates in all.
    assert {int(s["step"]) for s in resumed["optimizer"]["state"].values()} == {4}

    monkeypatch.chdir(workdir)  # the same stage without a stop, in one go, ends at the same step
    train.main(["configs/theis.toml", "--stage", "1", "--threads", "1", "--runs-dir", "one-go"])
    one_go = torch.load(workdir / "one-go" / "tiny-theis" / "stage1.pt", weights_only=True)
    assert one_go["step"] == resumed["step"] == 4
    assert one_go["model"].keys() == resumed["model"].keys()
    log_lines = (workdir / "one-go" / "tiny-theis" / "stage1.log").read_text()
    train.main(["configs/theis.toml", "--stage", "1", "--threads", "1", "--runs-dir", "one-go"])  # finished: no-op
    assert (workdir / "one-go" / "tiny-theis" / "stage1.log").read_text() == log_lines


def test_stage_2_refuses_an_unfinished_stage_1(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    with pytest.raises(SystemExit, match="no checkpoint .*stage1.pt: run --stage 1 first"):
        train.main(["configs/theis.toml", "--stage", "2", "--threads", "1", "--runs-dir", "empty"])


# --- export and loading what it wrote ---------------------------------------------------------------------


def load_exported(monkeypatch, weights_dir: Path):
    """Point facecodec.zoo at ``weights_dir`` instead of the installed weights (undone after the test)."""
    monkeypatch.setattr(zoo, "weights_folder", lambda: Path(weights_dir))
    zoo.clear_caches()


@pytest.fixture
def clean_zoo():
    yield
    zoo.clear_caches()


def test_export_writes_weights_and_manifest_entry(theis_run, workdir, monkeypatch, clean_zoo):
    monkeypatch.chdir(workdir)
    export.main(["configs/theis.toml", "--id", "tiny-theis-v1", "--table-images", "100", "--notes", "test"])
    weights = workdir / "weights"  # the default --weights-dir, under the current directory
    manifest = json.loads((weights / "manifest.json").read_text())
    assert manifest["default"] == "tiny-theis-v1"  # the first weights in a new manifest
    [entry] = exported(weights)
    assert entry["family"] == "ranges" and entry["settings"] == [1, 8] and entry["default_setting"] == 6
    assert entry["model"] == {"res_blocks": 1} and "lambdas" not in entry and "default_quality" not in entry
    assert (entry["channels"], entry["stride"]) == (4, 8)
    assert entry["stage1"]["steps"] == 4 and entry["stage2"]["steps"] == 2 and entry["config"] == "configs/theis.toml"

    tensors = load_file(weights / "tiny-theis-v1.safetensors")
    latent = family_class(entry["family"]).from_entry(entry)
    tables = {name: array for name, array in tensors.items() if name.startswith(zoo.ENTROPY_PREFIX)}
    assert sorted(tables) == sorted(zoo.ENTROPY_PREFIX + latent.table_name(s) for s in latent.settings)
    positions = 6 * 8 * 8  # all 6 training faces (fewer than --table-images), 64x64 -> 8x8 latent positions
    for setting in latent.settings:
        table = tables[zoo.ENTROPY_PREFIX + latent.table_name(setting)]
        assert table.dtype == np.int32 and table.shape == (4, latent.alphabet(setting))
        assert (table >= 1).all() and (table.sum(axis=1) == positions + latent.alphabet(setting)).all()
    assert all(t.dtype == np.float16 for name, t in tensors.items() if "weight" in name)

    # What export wrote loads and codes through the zoo's own code paths (manifest, SHA-256, tables, network).
    load_exported(monkeypatch, weights)
    face = workdir / "data" / "val" / "0.png"
    decoded = codec.decode(codec.encode(face, bits=5, weights_id="tiny-theis-v1"))
    assert decoded.size == (64, 64) and psnr(np.asarray(Image.open(face)), decoded) > 5
    spec = zoo.load_spec("tiny-theis-v1")
    assert spec.family.default == 6 and set(spec.entropy_tables) == {latent.table_name(s) for s in latent.settings}


def test_export_of_a_gained_model_with_a_default_setting(gained_run, workdir, tmp_path, monkeypatch, clean_zoo):
    monkeypatch.chdir(workdir)
    export.main(["configs/gained.toml", "--id", "tiny-gained-v1", "--weights-dir", str(tmp_path),
                 "--default-setting", "2", "--table-images", "3"])
    [entry] = exported(tmp_path)
    assert entry["family"] == "gained" and entry["settings"] == [1, 3] and entry["default_setting"] == 2
    assert entry["model"] == {"hidden": 8, "levels": 3} and entry["lambdas"] == [0.01, 0.04, 0.16]
    tables = {k: v for k, v in load_file(tmp_path / "tiny-gained-v1.safetensors").items() if k.startswith("entropy.")}
    assert sorted(tables) == ["entropy.quality1", "entropy.quality2", "entropy.quality3"]
    positions = 3 * 4 * 4  # 3 faces, 64x64 -> 4x4 latent positions at stride 16
    assert all(t.shape == (8, 64) and (t.sum(axis=1) == positions + 64).all() for t in tables.values())

    load_exported(monkeypatch, tmp_path)
    face = workdir / "data" / "val" / "1.png"
    assert codec.decode(codec.encode(face, weights_id="tiny-gained-v1")).size == (64, 64)  # quality 2 by default
    with pytest.raises(SystemExit, match="default setting 9 is not among"):
        export.main(["configs/gained.toml", "--id", "tiny-gained-v2", "--weights-dir", str(tmp_path),
                     "--default-setting", "9"])


def test_export_without_a_run_says_what_to_do(workdir, tmp_path, monkeypatch):
    monkeypatch.chdir(workdir)
    with pytest.raises(SystemExit, match=r"no checkpoint .*stage1.pt: train stage 1 of theis.toml first"):
        export.main(["configs/theis.toml", "--id", "x", "--runs-dir", str(tmp_path), "--weights-dir", str(tmp_path)])
    assert not list(tmp_path.iterdir())


# --- the series ----------------------------------------------------------------------------------------------


def test_series_defaults_are_the_shipped_study():
    assert [p.name for p in series.DEFAULT_CONFIGS] == [f"series_theis_c{c}.toml" for c in (24, 48, 96)]
    assert all(p.parent == TRAIN_DIR / "configs" for p in series.DEFAULT_CONFIGS)
    assert series.SERIES_BITS == (3, 6) and series.DEFAULT_RESULTS_DIR == Path("train")


def test_series_end_to_end(workdir, tmp_path, monkeypatch, capsys):
    config = tmp_path / "series_tiny.toml"
    config.write_text(THEIS.replace("tiny-theis", "series-tiny").replace("steps = 4", "steps = 2"))
    monkeypatch.chdir(workdir)
    series.main(["--configs", str(config), "--bits", "3", "6", "--runs-dir", str(tmp_path / "runs"),
                 "--results-dir", str(tmp_path / "results"), "--table-images", "4"])
    rows = json.loads((tmp_path / "results" / "series_results.json").read_text())
    assert [(r["channels"], r["sparsity"], r["bits"]) for r in rows] == [(4, "1/48", 3), (4, "1/48", 6)]
    assert all(r["stage1_steps"] == 2 and r["stage2_steps"] == 2 and r["bpp"] > 0 for r in rows)
    assert rows[0]["bpp"] < rows[1]["bpp"]  # 3-bit symbols cost fewer bits than 6-bit ones
    table = (tmp_path / "results" / "series_results.md").read_text()
    assert table.count("| 4 (1/48) |") == 2 and "Validation: 2 UTKFace val faces" in table
    assert sorted(p.name for p in (tmp_path / "runs" / "series-tiny").glob("*.pt")) == [
        "stage1.pt", "stage2-3bit.pt", "stage2-6bit.pt"]
    capsys.readouterr()
    series.main(["--configs", str(config), "--bits", "3", "--runs-dir", str(tmp_path / "runs"),  # all finished:
                 "--results-dir", str(tmp_path / "results"), "--table-images", "4"])  # scores only, trains nothing
    assert "facecodec.train.train" not in capsys.readouterr().out


def exported(weights_dir) -> list[dict]:
    """An export's manifest entries in ``weights_dir``, each with its model card's record (facecodec.train.cards):
    the manifest holds only the fields the runtime reads."""
    from facecodec.train.cards import RUNTIME_FIELDS, card_record

    entries = json.loads((Path(weights_dir) / "manifest.json").read_text())["weights"]
    assert all(set(entry) <= set(RUNTIME_FIELDS) for entry in entries)
    return [{**card_record(weights_dir, entry["id"]), **entry} for entry in entries]
