"""The seed's experiment series: sparsity 1/2, 1/4, 1/8, then 3- and 6-bit quantization, one table.

    python -m facecodec.train.series --threads 1
        [--configs A.toml B.toml ...] [--bits 3 6] [--runs-dir train/runs] [--results-dir train]
        [--table-images 500]

For each config (default: the package's ``train/configs/series_theis_c*.toml``)
this runs (or resumes, or skips when finished) stage 1 and stage 2 at each of
``--bits`` (default 3 and 6) with train.py, all with the config's step budgets,
then scores the checkpoints on the validation faces:

  * PSNR before quantization (stage 1 network, real-valued features);
  * PSNR after quantization (stage 1 decoder on quantized features);
  * PSNR after stage 2 (the retrained decoder on the same symbols);
  * bpp of real .fcz bytes: header and range-coded payload, with entropy tables
    counted on ``--table-images`` training faces, as export.py builds them
    (through the model's family, facecodec.families).

Runs go to ``--runs-dir`` (default ``train/runs``) and the results to
``RESULTS_DIR/series_results.json`` and ``RESULTS_DIR/series_results.md``
(``--results-dir``, default ``train``), both relative to the directory the
command runs in: the checkout's ``train/`` when run from its root.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from facecodec.bitstream import FczHeader, encode_symbols, pack
from facecodec.families import Family
from facecodec.metrics import bits_per_pixel
from facecodec.tensors import pad_to_stride
from facecodec.train import checkpoints
from facecodec.train.config import DEFAULT_RUNS_DIR, Config, load_config, user_errors
from facecodec.train.data import load_folder
from facecodec.train.export import entropy_tables, model_family
from facecodec.train.train import SERIES_BITS, checkpoint_path, evaluate, to_tensor
from facecodec.zoo import ENTROPY_PREFIX

TRAIN_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIGS = sorted(TRAIN_DIR.glob("configs/series_theis_c*.toml"))
DEFAULT_RESULTS_DIR = Path("train")


def train_all(configs: list[Config], bits_list: tuple[int, ...], runs_dir: Path, threads: int) -> None:
    """Train every stage that is not finished yet, each in its own ``python -m facecodec.train.train``."""
    for config in configs:
        for stage, bits in [(1, None)] + [(2, bits) for bits in bits_list]:
            ckpt = checkpoint_path(runs_dir, config, stage, bits)
            if ckpt.exists() and checkpoints.load(ckpt)["step"] >= config.stage(stage).steps:
                continue
            command = [sys.executable, "-m", "facecodec.train.train", str(config.path), "--stage", str(stage),
                       "--threads", str(threads), "--runs-dir", str(runs_dir)] + (["--bits", str(bits)] if bits else [])
            print(" ".join(command), flush=True)
            if subprocess.run(command).returncode:
                raise SystemExit(f"failed: {' '.join(command)}")


def load(runs_dir: Path, config: Config, stage: int, bits: int | None) -> tuple[torch.nn.Module, dict]:
    ckpt = checkpoints.load(checkpoint_path(runs_dir, config, stage, bits))
    model = config.build_model()
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


@torch.no_grad()
def mean_bpp(model: torch.nn.Module, family: Family, val: torch.Tensor, tables: np.ndarray, setting: int) -> float:
    """Mean bits per pixel of real .fcz files for the validation faces."""
    x, pad_right, pad_bottom = pad_to_stride(val, model.stride)
    symbols, fields = family.quantize(model, model.encode(x), setting)
    sizes = []
    for s, f in zip(symbols, fields):
        header = FczHeader(weights_id="series", width=val.shape[3], height=val.shape[2], mode="RGB",
                           pad_right=pad_right, pad_bottom=pad_bottom, latent_shape=s.shape, **f)
        sizes.append(len(pack(header, encode_symbols(s, tables))))
    return float(np.mean([bits_per_pixel(n, val.shape[3], val.shape[2]) for n in sizes]))


def score(configs: list[Config], bits_list: tuple[int, ...], runs_dir: Path, table_images: int) -> list[dict]:
    rows = []
    for config in configs:
        val = to_tensor(load_folder(config.data.val, limit=config.data.val_images), "cpu")
        images = load_folder(config.data.train, cache_dir=runs_dir / "cache")
        picks = np.sort(np.random.default_rng(0).choice(len(images), min(table_images, len(images)), replace=False))
        stage1, ckpt1 = load(runs_dir, config, 1, None)
        unquantized = evaluate(stage1, val, None)
        for bits in bits_list:
            stage2, ckpt2 = load(runs_dir, config, 2, bits)
            family = model_family(stage2)
            tables = entropy_tables(stage2, family, images[picks], settings=[bits])
            channels, stride = stage2.channels, stage2.stride
            rows.append({
                "channels": channels, "sparsity": f"1/{3 * stride * stride // channels}", "bits": bits,
                "psnr_unquantized": round(unquantized, 2),
                "psnr_quantized": round(evaluate(stage1, val, bits), 2),
                "psnr_after_stage2": round(evaluate(stage2, val, bits), 2),
                "bpp": round(mean_bpp(stage2, family, val, tables[ENTROPY_PREFIX + family.table_name(bits)].numpy(),
                                      bits), 3),
                "stage1_steps": ckpt1["step"], "stage1_seconds": round(ckpt1["elapsed_s"]),
                "stage2_steps": ckpt2["step"], "stage2_seconds": round(ckpt2["elapsed_s"]),
            })
            print(json.dumps(rows[-1]), flush=True)
    return rows


def write_table(rows: list[dict], val_images: int) -> str:
    lines = [
        f"Validation: {val_images} UTKFace val faces (200x200). bpp: real .fcz bytes, header included.",
        "",
        "| channels (sparsity) | bits | PSNR unquantized | PSNR quantized | PSNR after stage 2 | bpp | CPU budget (stage 1 + 2) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(f"| {r['channels']} ({r['sparsity']}) | {r['bits']} | {r['psnr_unquantized']:.2f} dB | "
                     f"{r['psnr_quantized']:.2f} dB | {r['psnr_after_stage2']:.2f} dB | {r['bpp']:.3f} | "
                     f"{r['stage1_steps']} steps, {r['stage1_seconds']} s + {r['stage2_steps']} steps, "
                     f"{r['stage2_seconds']} s |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", type=Path, default=DEFAULT_CONFIGS,
                        help="train.py configs, one per row group (default: the package's series_theis_c*.toml)")
    parser.add_argument("--bits", nargs="+", type=int, default=list(SERIES_BITS),
                        help="a stage-2 run at each of these bit depths (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--table-images", type=int, default=500)
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS_DIR,
                        help="checkpoints go to RUNS_DIR/NAME (default: %(default)s, relative to the current directory)")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR,
                        help="series_results.json and .md go here (default: %(default)s, relative to the current "
                             "directory)")
    args = parser.parse_args(argv)
    with user_errors():
        configs = [load_config(path) for path in args.configs]
        configs.sort(key=lambda c: -c.build_model().channels)  # the table lists the sparsest last
        bits_list = tuple(args.bits)
        train_all(configs, bits_list, args.runs_dir, args.threads)
        rows = score(configs, bits_list, args.runs_dir, args.table_images)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "series_results.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = write_table(rows, configs[0].data.val_images)
    (args.results_dir / "series_results.md").write_text("# The seed's experiment series\n\n" + table)
    print(table)


if __name__ == "__main__":
    main()
