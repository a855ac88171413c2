#!/usr/bin/env bash
# One GPU, under 8 minutes: HSTU large on ml-1m-u2999 and then amazon-beauty with the default settings
# (bf16 autocast, torch.compile, early stopping on validation NDCG@10, a budget of MINUTES each), one run
# at a time: runs sharing a card slow each other down by several times (each CUDA context gets time
# slices). Prints the accuracy table and the GPU rows against the CPU rows of
# benchmarks/results/scaling.json (CPU s/epoch of sizes too slow to train on 2 cores come from
# `benchmarks/scaling.py --step-time`).
#
#   bash benchmarks/gpu_check.sh                           # datasets from GENREC_DATA_DIR
#   SIZES=tiny,small,base,large MINUTES=10 bash benchmarks/gpu_check.sh   # the scaling curve (~80 min)
#   COMPILE=off TAG=eager bash benchmarks/gpu_check.sh     # eager steps, for comparison
#   SIZES=small SEEDS=0,1,2 MODELS=hstu,sasrec MINUTES=10 bash benchmarks/gpu_check.sh   # mean ± std
#   DEVICE=cpu MINUTES=0.2 SIZES=tiny DATASETS=ml-100k bash benchmarks/gpu_check.sh   # dry run, no GPU
#
# Needs torch, numpy, pandas, pyarrow, scipy and tqdm: genrec runs from src/ without being installed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export GENREC_DATA_DIR=${GENREC_DATA_DIR:-../shared/datasets}
DEVICE=${DEVICE:-cuda} MINUTES=${MINUTES:-3.5} SIZES=${SIZES:-large} COMPILE=${COMPILE:-auto}
DATASETS=${DATASETS:-ml-1m-u2999,amazon-beauty} TAG=${TAG:-} SEEDS=${SEEDS:-0} MODELS=${MODELS:-hstu}

if [ "$DEVICE" = cuda ]; then
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible')" || exit 1
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
"$PY" -c "import torch; print('torch', torch.__version__)"
start=$(date +%s)
"$PY" benchmarks/scaling.py --datasets "$DATASETS" --models "$MODELS" --sizes "$SIZES" --seeds "$SEEDS" \
    --jobs 1 --minutes "$MINUTES" \
    --tag "$TAG" --set device="$DEVICE" --set compile="$COMPILE" --set threads=1
status=$?
echo
"$PY" benchmarks/scaling.py --compare
echo "gpu_check: $(($(date +%s) - start)) s"
exit $status
