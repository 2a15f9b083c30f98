#!/usr/bin/env bash
# The accuracy of CCN 20:4 at and above its best step size: the authors' C++ against ccn-study
# with ours and with the reference update rule (`--update-rule`), same settings, seeds 0-2.
# Trace patterning, stages of STEPS/5 (the last never ends), lambda 0.99, normalisation off
# (the C++'s normalization_rate 1), recurrent weights U(-0.5, 0.5) here (our default) and
# U(-0.01, 0.01) in the C++. Prints one line per run: who, rule, alpha, seed, MSRE over the last
# 100,000 steps. The C++ runs on core 1, ours on core 0, side by side.
#   usage: rule-vs-cpp.sh REFERENCE_DIR [STEPS] [ALPHA ...]   (default 5000000, 0.003 0.01 0.03)
set -euo pipefail
ARGV=("$@")
REF=${1:?usage: rule-vs-cpp.sh REFERENCE_DIR [STEPS] [ALPHA ...]}
[[ -f $REF/run.sh ]] || { echo "rule-vs-cpp.sh: no run.sh in $REF" >&2; exit 2; }
STEPS=${2:-5000000}
[[ $STEPS =~ ^[1-9][0-9]*$ && $((STEPS % 50000)) -eq 0 ]] \
  || { echo "rule-vs-cpp.sh: STEPS=$STEPS must be a positive multiple of 50,000" >&2; exit 2; }
shift $(( $# >= 2 ? 2 : 1 ))
ALPHAS=("$@"); [[ ${#ALPHAS[@]} -gt 0 ]] || ALPHAS=(0.003 0.01 0.03)
PY=${PYTHON:-python}
ROOT=${CCN_CPP_ROOT:-${TMPDIR:-/tmp}/ccn-cpp-reference}
STAGE=$((STEPS / 5))
CCN_CPP_ROOT=$ROOT bash "$REF/run.sh" 20000 >/dev/null 2>&1  # builds the binary
BIN=$ROOT/build/AnimalLearning
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cpp() {
  for a in "${ALPHAS[@]}"; do for s in 0 1 2; do
    cat >"$WORK/c.json" <<EOF
{"experiment": {"name": "rule", "params": {
  "seed": "$s", "steps": "$STEPS", "input_features": "12", "features": "20:4:$STAGE",
  "algorithm": "hybrid", "step_size": "$a", "lambda": "0.99", "std_cap": "0.01",
  "normalization_rate": "1.0"}}}
EOF
    taskset -c 1 "$BIN" --config "$WORK/c.json" --run 0 >"$WORK/c.log" 2>&1
    echo "cpp reference $a $s $(awk '$1=="RESULT"{print $13}' "$WORK/c.log")"
  done; done
}

ours() {
  for rule in ours reference; do
    taskset -c 0 "$PY" -m study.run --learner hybrid --features 20 --per-stage 4 \
      --steps "$STEPS" --stage-steps "$STAGE" --alpha "${ALPHAS[@]}" --seeds 3 --lambda 0.99 \
      --norm-rate 0 --update-rule "$rule" --threads 1 2>/dev/null \
      | awk -v rule="$rule" '/^alpha=/{split($1, a, "="); alpha = a[2]}
                             /^  seed/{sub(":", "", $2); print "ours", rule, alpha, $2, $4}'
  done
}

cpp >"$WORK/cpp.out" &
ours | tee "$WORK/ours.out"
wait
cat "$WORK/cpp.out"
# The same as a Markdown table for the docs (seeds 0, 1, 2 in each cell), with its footer: the
# command, the machine, jax, the commit and the date.
echo
echo "MSRE over the last 100,000 steps of CCN 20:4, seeds 0, 1, 2; $STEPS steps, stages of $STAGE."
echo
echo "| alpha | C++ | ccn-study, reference rule | ccn-study, our rule |"
echo "| ---: | --- | --- | --- |"
cat "$WORK/cpp.out" "$WORK/ours.out" | awk '
  { key = $1 " " $2; v[key, $3] = (v[key, $3] == "" ? "" : v[key, $3] ", ") sprintf("%.2g", $5)
    if (!($3 in seen)) { seen[$3] = 1; order[++n] = $3 } }
  END { for (i = 1; i <= n; i++) { a = order[i]
          printf "| %s | %s | %s | %s |\n", a, v["cpp reference", a], v["ours reference", a],
                 v["ours ours", a] } }'
echo
"$PY" -c 'import sys; from study.cli import provenance; print(provenance(sys.argv[1]))' \
  "bash study/bench/rule-vs-cpp.sh ${ARGV[*]}"
