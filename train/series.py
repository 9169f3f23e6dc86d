"""The seed's experiment series: sparsity 1/2, 1/4, 1/8, then 3- and 6-bit quantization, one table.

    python -m facecodec.train.series --threads 1

For each ``train/configs/series_theis_c*.toml`` this runs (or resumes, or skips
when finished) stage 1 and stage 2 at 3 and 6 bits, all with the same step
budgets, then scores the checkpoints on the validation faces:

  * PSNR before quantization (stage 1 network, real-valued features);
  * PSNR after quantization (stage 1 decoder on quantized features);
  * PSNR after stage 2 (the retrained decoder on the same symbols);
  * bpp of real .fcz bytes: header and range-coded payload, with entropy tables
    counted on ``--table-images`` training faces, as export.py builds them.

Writes ``train/series_results.json`` and ``train/series_results.md``.
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
from facecodec.metrics import bits_per_pixel
from facecodec.models import build_model
from facecodec.quantizer import channel_ranges, quantize
from facecodec.train.data import load_folder
from facecodec.train.export import entropy_tables
from facecodec.train.train import RUNS_DIR, SERIES_BITS, evaluate, load_config, run_file, to_tensor
from facecodec.zoo import ENTROPY_PREFIX

TRAIN_DIR = Path(__file__).resolve().parent
CONFIGS = sorted(TRAIN_DIR.glob("configs/series_theis_c*.toml"), key=lambda p: -load_config(p)["channels"])


def train_all(threads: int) -> None:
    for path in CONFIGS:
        config = load_config(path)
        runs = [(1, None)] + [(2, bits) for bits in SERIES_BITS]
        for stage, bits in runs:
            ckpt = RUNS_DIR / config["name"] / f"{run_file(stage, bits)}.pt"
            steps = config[f"stage{stage}"]["steps"]
            if ckpt.exists() and torch.load(ckpt, map_location="cpu", weights_only=True)["step"] >= steps:
                continue
            command = [sys.executable, "-m", "facecodec.train.train", str(path), "--stage", str(stage),
                       "--threads", str(threads)] + (["--bits", str(bits)] if bits else [])
            print(" ".join(command), flush=True)
            subprocess.run(command, check=True)


def load(config: dict, stage: int, bits: int | None) -> tuple[torch.nn.Module, dict]:
    ckpt = torch.load(RUNS_DIR / config["name"] / f"{run_file(stage, bits)}.pt", map_location="cpu", weights_only=True)
    model = build_model("theis", channels=config["channels"])
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


@torch.no_grad()
def mean_bpp(model: torch.nn.Module, val: torch.Tensor, tables: np.ndarray, bits: int) -> float:
    """Mean bits per pixel of real .fcz files for the validation faces."""
    y = model.encode(val)
    lo, hi = channel_ranges(y)
    symbols = quantize(y, lo, hi, bits).numpy()
    sizes = []
    for s, l, h in zip(symbols, lo.tolist(), hi.tolist()):
        header = FczHeader(weights_id="series", width=val.shape[3], height=val.shape[2], mode="RGB", bits=bits,
                           pad_right=0, pad_bottom=0, latent_shape=s.shape, channel_ranges=tuple(zip(l, h)))
        sizes.append(len(pack(header, encode_symbols(s, tables))))
    return float(np.mean([bits_per_pixel(n, val.shape[3], val.shape[2]) for n in sizes]))


def score(table_images: int) -> list[dict]:
    rows = []
    for path in CONFIGS:
        config = load_config(path)
        val = to_tensor(load_folder(config["data"]["val"], limit=config["data"]["val_images"]), "cpu")
        images = load_folder(config["data"]["train"], cache_dir=RUNS_DIR / "cache")
        picks = np.sort(np.random.default_rng(0).choice(len(images), table_images, replace=False))
        stage1, ckpt1 = load(config, 1, None)
        unquantized = evaluate(stage1, val, None)
        for bits in SERIES_BITS:
            stage2, ckpt2 = load(config, 2, bits)
            tables = entropy_tables(stage2, images[picks])[f"{ENTROPY_PREFIX}{bits}"].numpy()
            rows.append({
                "channels": config["channels"], "sparsity": f"1/{3 * 8 * 8 // config['channels']}", "bits": bits,
                "psnr_unquantized": round(unquantized, 2),
                "psnr_quantized": round(evaluate(stage1, val, bits), 2),
                "psnr_after_stage2": round(evaluate(stage2, val, bits), 2),
                "bpp": round(mean_bpp(stage2, val, tables, bits), 3),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--table-images", type=int, default=500)
    args = parser.parse_args()
    train_all(args.threads)
    rows = score(args.table_images)
    (TRAIN_DIR / "series_results.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = write_table(rows, load_config(CONFIGS[0])["data"]["val_images"])
    (TRAIN_DIR / "series_results.md").write_text("# The seed's experiment series\n\n" + table)
    print(table)


if __name__ == "__main__":
    main()
