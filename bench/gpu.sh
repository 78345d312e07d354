#!/usr/bin/env bash
# The op and decode benchmarks at the 1.3b shapes in bf16, prepared for a GPU machine. One run
# should take about 5 minutes on an H200 (an estimate; well under 10). Rows go to
# $RESULTS/bench_op.csv and bench_decode.csv. The Interdomain Attention paper (arXiv:2605.24330)
# reports 12.4-12.5 ms per token at 1.3B, batch 1, bf16, on an RTX 6000 Ada with CUDA graphs.
# idattn decodes eagerly (no CUDA graphs), so part of any gap is Python and kernel-launch time.
#
#   bash bench/gpu.sh                                   # on the GPU machine, from any folder
#   DEVICE=cpu DTYPE=float32 MODEL=tiny HEADS=2 OP_LENGTHS=128 DECODE_LENGTHS=32 RESULTS=/tmp/gpu-dry-run \
#       bash bench/gpu.sh                               # dry run on CPU, rows outside results/
#
# Needs python3 with torch (CUDA build) and idattn's dependencies importable. A machine that cannot
# reach a package index gets the missing ones as wheels in .whl/ (see docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/idattn-site .whl/*.whl
    export PYTHONPATH=/tmp/idattn-site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
DEVICE=${DEVICE:-cuda} DTYPE=${DTYPE:-bfloat16} MODEL=${MODEL:-1.3b} HEADS=${HEADS:-32}
RESULTS=${RESULTS:-results}
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
# stop at once, naming the module, if a dependency of the bench commands is missing
for module in hydra omegaconf typer rich filelock; do
    python3 -c "import $module" 2>/dev/null || {
        echo "error: python3 cannot import $module; install idattn's dependencies, or put their wheels in .whl/" >&2
        exit 2
    }
done

# the core op at 1.3b's heads (32 heads, R = P = M = 64) against SDPA; scan and fft are CPU references
python3 -m idattn_cli.cli bench op --device "$DEVICE" --dtype "$DTYPE" --heads "$HEADS" --backends chunk \
    ${OP_LENGTHS:+--lengths "$OP_LENGTHS"} --results-dir "$RESULTS"
# per-token decode of the whole 1.3b model (batch 1) from contexts of 512 to 16K tokens
python3 -m idattn_cli.cli bench decode --device "$DEVICE" --dtype "$DTYPE" --models "$MODEL" \
    ${DECODE_LENGTHS:+--lengths "$DECODE_LENGTHS"} --results-dir "$RESULTS"
