#!/usr/bin/env bash
# The prepared training run for a session that is lent a GPU (the `device` tool: one H200 for about
# 15 minutes, a bare machine that receives only this checkout, nothing from ../shared). Two halves:
#
#   here:   bash train/gpu_session.sh prepare [FACES]
#           copies FACES training faces (default 4000, about 30 MB) and 16 validation faces into .gpu/
#           (git-ignored) and downloads the constriction wheel for the machine's Python 3.12 there
#   there:  device run, carry [".gpu"], timeout_s 600, command:
#           bash train/gpu_session.sh run MODULE CONFIG MINUTES [TRAINER OPTIONS...]
#           e.g.  bash train/gpu_session.sh run train_restore train/configs/restore_inpaint.toml 8
#
# MODULE is a trainer under facecodec.train (train, train_rd, train_postfilter, train_restore) and
# CONFIG one of train/configs/*.toml; its data paths are pointed at .gpu/ and it runs on CUDA for
# MINUTES (set the config's steps to what fits, so the learning rate decays in time), then a restore
# run of one stage, or the default weights' post-filter (train_postfilter, the largest learned part of the
# default family: `run train_postfilter train/configs/wavelet_pf.toml 12 --stage 2`), is exported. Checkpoints (model and Adam state) outgrow what comes back from
# the machine (16 MiB a file), so what comes back under $OUT is the exported fp16 weights with their
# manifest entry and the run's logs: add the entry to weights/manifest.json here, or start a CPU run
# from them with `init_weights`. The machine's PyTorch is its own (2.11 with CUDA), not the pinned one.
set -euo pipefail
cd "$(dirname "$0")/.."
GPU_DIR=.gpu
PYTHON=${PYTHON:-python3}  # the machine's: a plain python3 there is the one that holds PyTorch

prepare() {
    local faces=${1:-4000}
    grep -qx "/$GPU_DIR/" .git/info/exclude 2>/dev/null || echo "/$GPU_DIR/" >> .git/info/exclude
    rm -rf "$GPU_DIR" && mkdir -p "$GPU_DIR/train" "$GPU_DIR/val" "$GPU_DIR/wheels"
    find ../shared/data/faces/train -name '*.jpg' | sort | sed -n "1,${faces}p" | xargs cp -t "$GPU_DIR/train"  # sed reads to the end: no SIGPIPE under pipefail
    find ../shared/data/faces/val -name '*.jpg' | sort | sed -n 1,16p | xargs cp -t "$GPU_DIR/val"
    local constriction
    constriction=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('constriction'))" 2>/dev/null || echo 0.5.0)
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$GPU_DIR/wheels" "constriction==$constriction"
    du -sh "$GPU_DIR"
}

run() {
    local module=$1 config=$2 minutes=$3
    shift 3
    local out=${OUT:-/tmp/gpu-out} site=/tmp/gpu-site runs=/tmp/gpu-runs
    mkdir -p "$out" "$site/facecodec"
    "$PYTHON" -c "import constriction" 2>/dev/null ||
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$GPU_DIR"/wheels/*.whl
    # The package as setup.cfg installs it (bitstream/, train/ and weights/ inside facecodec), by links.
    ln -sfn "$PWD"/facecodec/* "$site/facecodec/"
    ln -sfn "$PWD/bitstream" "$site/facecodec/bitstream"
    ln -sfn "$PWD/train" "$site/facecodec/train"
    ln -sfn "$PWD/weights" "$site/facecodec/weights"
    sed -e "s|^train = .*|train = \"$GPU_DIR/train\"|" -e "s|^val = .*|val = \"$GPU_DIR/val\"|" \
        "$config" > "$GPU_DIR/config.toml"
    export PYTHONPATH=$site PYTHONUNBUFFERED=1
    "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    # Status 1 is also the trainers' deliberate stop (--minutes): export whatever was reached either way.
    "$PYTHON" -m "facecodec.train.$module" "$GPU_DIR/config.toml" --runs-dir "$runs" --minutes "$minutes" "$@" \
        2>&1 | tee "$out/train.log" || echo "the trainer exited with status $?"
    case $module in
        train_restore) "$PYTHON" -m facecodec.train.export_restore "$GPU_DIR/config.toml" \
                           --id "gpu-$(basename "$config" .toml | tr _ -)" --runs-dir "$runs" --weights-dir "$out/weights" ;;
        train_postfilter) "$PYTHON" -m facecodec.train.train_postfilter "$GPU_DIR/config.toml" \
                              --export "gpu-$(basename "$config" .toml | tr _ -)" --runs-dir "$runs" \
                              --weights-dir "$out/weights" ;;
        *) echo "export $module's run with its own export command (its checkpoint is in $runs, on the machine)" ;;
    esac
    cp "$runs"/*/*.log "$out/" 2>/dev/null || true
}

case ${1:-} in
    prepare) shift; prepare "$@" ;;
    run) shift; run "$@" ;;
    *) sed -n 2,17p "$0"; exit 2 ;;
esac
