#!/usr/bin/env bash
# The figures of packed trials on a GPU (README, Performance: "Packed trials"), in one go, on
# a machine with an NVIDIA GPU and jax[cuda]:
#   1. what a step of the whole run loop (task, learner, metric) costs on the GPU at 1, 256
#      and 4,096 streams (the fixed part is the 1-stream figure), with JAX's scan unrolled
#      1, 8 and 32 steps per iteration (CCN_SCAN_UNROLL: the best then goes into the
#      environment of the studies below, e.g. CCN_SCAN_UNROLL=8 bash cluster/...);
#   2. a columnar-7 study of 64 configurations x 30 seeds, unpacked (64 trials, 8 at once on
#      the GPU) and packed (--pack 64: one trial): configuration-steps per second of each;
#   3. the paper's trace-patterning sweep (columnar 7, constructive 10:1, CCN 20:4, its
#      step-size grid, 30 seeds, 50M steps) on the GPU, packed, with its wall time.
#   bash cluster/gpu-pack-bench.sh [OUT_DIR]   (default ./gpu-pack-bench; python: $PYTHON)
# Targets (issue: packed trials): pack/unpacked >= 20x in 2; fixed step cost <= 6 us in 1;
# the sweep of 3 within 15 minutes.
set -uo pipefail
out=${1:-gpu-pack-bench}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false RAY_USAGE_STATS_ENABLED=0
nvidia-smi -L
$py -c "import jax; print('jax', jax.__version__, jax.devices())" || exit 1
for unroll in 1 8 32; do  # JAX's loop, 1, 8 or 32 steps per scan iteration (CCN_SCAN_UNROLL)
  CCN_SCAN_UNROLL=$unroll timeout "${STEP_S:-300}" $py -m study.bench --device gpu \
    --learners columnar,hybrid --streams 1 256 4096 --steps 2000 \
    --out "$out/step-unroll$unroll.csv" 2>&1 | tee "$out/step-unroll$unroll.log"
done
timeout "${STUDY_S:-1800}" $py -m study.bench --study --study-space columnar \
  --study-trials 64 --study-seeds 30 --study-steps 200000 --study-concurrency 8 \
  --study-packs 1 64 --study-set='--set n_features=7 --gpus-per-trial 0.125' \
  --out "$out/study.csv" 2>&1 | tee "$out/study.log"
start=$(date +%s)
timeout "${SWEEP_S:-3600}" $py -m study.compare --preset jmlr-trace-patterning \
  --spaces columnar,constructive,hybrid --gpus-per-trial 0.33 --concurrency 3 --pack auto \
  --runs-dir "$out/runs" 2>&1 | tee "$out/sweep.log"
echo "paper sweep: $(( $(date +%s) - start )) s wall (target: 900 s)" | tee -a "$out/sweep.log"
