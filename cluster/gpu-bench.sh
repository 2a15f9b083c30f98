#!/usr/bin/env bash
# The GPU figures of docs/performance.md, in one go, on a machine with an NVIDIA
# GPU and jax[cuda]: the CPU-vs-GPU crossover sweep, the learner table on the GPU at large
# batches, and the exactness tests (float64 against autodiff) run on the GPU. The two tables
# are also written as Markdown with their footers (command, machine, jax, commit, date).
#   bash cluster/gpu-bench.sh [OUT_DIR]    (default ./gpu-bench; python: $PYTHON or python3)
set -uo pipefail
out=${1:-gpu-bench}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi -L
$py -c "import jax; print('jax', jax.__version__, jax.devices())" || exit 1
timeout "${CROSSOVER_S:-240}" $py -m study.bench --crossover --repeats 3 \
  --out "$out/crossover.csv" --markdown "$out/crossover.md" 2>&1 | tee "$out/crossover.log"
timeout "${TABLE_S:-240}" $py -m study.bench --device gpu --streams 1 4096 \
  --learners columnar,constructive,hybrid,snap1,tbptt,columnar_autodiff \
  --max-params 400000000 --out "$out/gpu.csv" --markdown "$out/gpu.md" 2>&1 | tee "$out/gpu.log"
timeout "${TESTS_S:-120}" $py -m pytest -q -p no:cacheprovider -n 8 tests/test_columns.py \
  tests/test_dense.py tests/test_learners.py tests/test_classify.py tests/test_ledger.py \
  2>&1 | tee "$out/tests.log" | tail -15
