"""Data-parallel training under torchrun: 2 processes (gloo, CPU) on tiny runs, resumed by 1 and the reverse.

The launcher runs as a subprocess (``python -m torch.distributed.run --standalone``,
which picks a free port itself); the one-process runs are the trainers' main()
in-process. Each launch costs a few seconds of interpreter and process-group start.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facecodec.train import distributed, export, train, train_rd
from facecodec.train.config import ConfigError, load_config
from facecodec.train.distributed import Processes

STAGES = """
[stage1]
steps = 4
batch_size = 2
crop = 32
max_scale = 1.5
lr = 1e-3
lr_final = 1e-4
clip_grad_norm = 1.0
eval_every = 2
bits = 5

[stage2]
steps = 2
batch_size = 2
crop = 32
max_scale = 1.0
lr = 1e-4
lr_final = 1e-5
clip_grad_norm = 1.0
eval_every = 2
bits = 5
"""
DATA = '\n[data]\ntrain = "data/train"\nval = "data/val"\nval_images = 2\ncalibration_images = 4\n'
GAINED = 'name = "ddp-gained"\narchitecture = "gained"\nseed = 1\nlambdas = [0.01, 0.04, 0.16]\n' \
         '[model]\nchannels = 8\nhidden = 8\nlevels = 3\n' + DATA + STAGES.replace("bits = 5\n", "")
THEIS = 'name = "ddp-theis"\narchitecture = "theis"\nseed = 1\n[model]\nchannels = 4\nres_blocks = 1\n' + DATA + STAGES

pytestmark = pytest.mark.usefixtures("keep_torch_threads")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, write_tiny_faces) -> Path:
    """data/train (6 crops of the astronaut, 64x64), data/val (2) and the two tiny configs."""
    root = tmp_path_factory.mktemp("ddp")
    write_tiny_faces(root)
    (root / "gained.toml").write_text(GAINED)
    (root / "theis.toml").write_text(THEIS)
    return root


def torchrun(workdir: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 -m facecodec.train.MODULE ARGS`` in ``workdir``."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", f"facecodec.train.{module}", *args]
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=180)


def checkpoint(path: Path) -> dict:
    ckpt = torch.load(path, weights_only=True)
    assert not [k for k in ckpt["model"] if k.startswith("module.")]  # the bare model's names
    return ckpt


def adam_steps(ckpt: dict) -> set[int]:
    return {int(s["step"]) for s in ckpt["optimizer"]["state"].values()}


def logged_steps(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def test_two_processes_stop_and_one_resumes(workdir, monkeypatch):
    """gained: 2 processes stop at step 2 (rank 0 saves once), 1 process finishes, 2 run the frozen-encoder stage 2."""
    runs = workdir / "train" / "runs" / "ddp-gained"
    done = torchrun(workdir, "train_rd", "gained.toml", "--stage", "1", "--stop-at", "2")
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("stopped (--stop-at) at step 2 of 4; the same command resumes") == 1  # rank 0 only
    records = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 1 and json.loads(records[0])["step"] == 2  # one evaluation, printed by rank 0
    ckpt = checkpoint(runs / "stage1.pt")
    assert ckpt["step"] == 2 and adam_steps(ckpt) == {2} and logged_steps(runs / "stage1.log") == [2]
    assert not list(runs.glob("*.tmp"))

    monkeypatch.chdir(workdir)  # one plain process takes the checkpoint on
    train_rd.main(["gained.toml", "--stage", "1", "--threads", "1"])
    ckpt = checkpoint(runs / "stage1.pt")
    assert ckpt["step"] == 4 and adam_steps(ckpt) == {4} and logged_steps(runs / "stage1.log") == [2, 4]

    done = torchrun(workdir, "train_rd", "gained.toml", "--stage", "2")  # encoder, gains and prior frozen
    assert done.returncode == 0, done.stderr
    ckpt = checkpoint(runs / "stage2.pt")
    assert ckpt["step"] == 2 and adam_steps(ckpt) == {2} and logged_steps(runs / "stage2.log") == [2]
    assert done.stdout.count('"step": 2') == 1

    export.main(["gained.toml", "--id", "ddp-gained-v1", "--weights-dir", str(workdir / "weights"),
                 "--table-images", "3"])  # export reads what DDP wrote like any checkpoint
    assert (workdir / "weights" / "ddp-gained-v1.safetensors").exists()


def test_one_process_stops_and_two_resume_with_batch_norm(workdir, monkeypatch):
    """theis (batch norm): 1 process stops at step 2, 2 processes finish stage 1 (rank 0 recalibrates) and run stage 2."""
    runs = workdir / "train" / "runs" / "ddp-theis"
    monkeypatch.chdir(workdir)
    with pytest.raises(SystemExit, match="stopped at step 2 of 4"):
        train.main(["theis.toml", "--stage", "1", "--threads", "1", "--stop-at", "2"])
    before = checkpoint(runs / "stage1.pt")

    done = torchrun(workdir, "train", "theis.toml", "--stage", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("resuming") == 1  # rank 0 only
    ckpt = checkpoint(runs / "stage1.pt")
    assert ckpt["step"] == 4 and adam_steps(ckpt) == {4} and logged_steps(runs / "stage1.log") == [2, 4]
    assert ckpt["elapsed_s"] >= before["elapsed_s"]
    assert ckpt["model"].keys() == before["model"].keys()
    assert not torch.equal(ckpt["model"]["g_a.1.running_mean"], before["model"]["g_a.1.running_mean"])

    done = torchrun(workdir, "train", "theis.toml", "--stage", "2")
    assert done.returncode == 0, done.stderr
    stage2 = checkpoint(runs / "stage2-5bit.pt")
    assert stage2["step"] == 2 and logged_steps(runs / "stage2-5bit.log") == [2]
    frozen = [k for k in ckpt["model"] if k.startswith("g_a.") and "num_batches" not in k]
    assert all(torch.equal(stage2["model"][k], ckpt["model"][k]) for k in frozen if "running" not in k)


SYNC_CHECK = """
import torch
from facecodec.models.gained import GainedFactorized
from facecodec.train import distributed
from facecodec.train.train_rd import rd_forward


def check(processes):  # in a function, as the trainers do: DDP is gone before the group is torn down
    torch.manual_seed(processes.rank)  # different weights on each process: DDP starts all from rank 0's
    model = GainedFactorized(channels=8, hidden=8, levels=3).train()
    reference = GainedFactorized(channels=8, hidden=8, levels=3).train()
    for m in (model, reference):  # as stage 2 trains: only the decoder and its inverse gains
        m.requires_grad_(False)
        m.g_s.requires_grad_(True)
        m.log_inverse_gain.requires_grad_(True)
    net = distributed.wrap(model, lambda model, x, levels: rd_forward(model, x, levels, 2), processes)
    torch.manual_seed(7)  # one global batch of 4; each process takes its half (stage 2's pass: no noise)
    x, levels = torch.rand(4, 3, 32, 32), torch.tensor([0, 2, 1, 2])
    reference.load_state_dict(model.state_dict())  # rank 0's weights, now on both processes
    mine = slice(processes.rank, None, processes.world_size)
    x_hat, _ = net(x[mine], levels[mine])
    ((x_hat - x[mine]) ** 2).mean().backward()
    x_hat, _ = rd_forward(reference, x, levels, 2)  # one process, the whole batch
    ((x_hat - x) ** 2).mean().backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])
    expected = torch.cat([p.grad.flatten() for p in reference.parameters() if p.requires_grad])
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    everyone = [torch.empty_like(weights) for _ in range(processes.world_size)]
    torch.distributed.all_gather(everyone, weights)
    assert all(torch.equal(w, everyone[0]) for w in everyone), "weights differ"
    if processes.master:
        assert torch.allclose(grads, expected, rtol=1e-4, atol=1e-7), (grads - expected).abs().max()
        print("gradients of the whole batch")


with distributed.process_group() as processes:
    check(processes)
"""


def test_processes_start_alike_and_average_the_whole_batch_gradient(tmp_path):
    """The training pass through distributed.wrap: same start on both processes, gradient of the global batch."""
    (tmp_path / "sync_check.py").write_text(SYNC_CHECK)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "sync_check.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("gradients of the whole batch") == 1


# --- the rules, in-process ----------------------------------------------------------------------------------


def test_a_single_process_has_no_process_group(monkeypatch):
    for name in distributed.LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with distributed.process_group() as processes:
        assert processes == distributed.SINGLE and processes.master and not processes.ddp
        assert not torch.distributed.is_initialized()


@pytest.mark.parametrize("code, status, printed", [(None, 0, ""), (0, 0, ""), (3, 3, ""),
                                                    ("stopped at step 2", 1, "stopped at step 2\n")])
def test_a_launched_process_exits_with_the_status_the_interpreter_would_give(code, status, printed, capsys):
    assert distributed.exit_status(SystemExit(code)) == status
    assert capsys.readouterr().err == printed


def test_the_config_batch_is_split_among_the_processes(workdir):
    stage = load_config(workdir / "gained.toml", base=workdir).stage1  # batch_size 2
    assert distributed.per_process_batch(stage, 1, distributed.SINGLE) == 2
    assert distributed.per_process_batch(stage, 1, Processes(ddp=True, rank=1, world_size=2)) == 1
    with pytest.raises(ConfigError, match="stage1.batch_size = 2 does not split equally among 3 processes"):
        distributed.per_process_batch(stage, 1, Processes(ddp=True, world_size=3))


def test_each_process_has_its_own_shard_and_random_stream():
    images = np.arange(7)[:, None, None, None]
    shards = [distributed.shard(images, Processes(ddp=True, rank=r, world_size=3)).ravel().tolist() for r in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    seeds = [distributed.rank_seed(1002, Processes(ddp=True, rank=r, world_size=3)) for r in range(3)]
    assert seeds[0] == 1002 == distributed.rank_seed(1002, distributed.SINGLE) and len(set(seeds)) == 3


def test_threads_share_the_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert distributed.default_threads(distributed.SINGLE) == 8
    assert distributed.default_threads(Processes(ddp=True, world_size=2, local_world_size=2)) == 4
    assert distributed.default_threads(Processes(ddp=True, world_size=16, local_world_size=16)) == 1
