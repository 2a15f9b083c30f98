#!/usr/bin/env bash
# ccn-study's full loop against the authors' C++ on one core, in one run: the C++ reference's
# own script (run.sh in REFERENCE_DIR: the public C++ of Javed et al. built -O3, one thread)
# times its four trace-patterning learners, then `python -m study.run` times the same four with
# one XLA thread on the same core, at every stream count asked (seeds run side by side).
# Prints learner, streams, C++ steps/s (one stream), ours in stream-steps/s, and the ratio.
#   usage: versus-cpp.sh REFERENCE_DIR [STEPS] [STREAMS ...]    (default 5000000, 1 8 64)
# Ours is timed at STEPS and STEPS/5 per stream and the difference taken, so that start-up and
# compilation cancel out (both lengths compile one program: study.run runs equal chunks);
# with many streams STEPS is divided by the stream count (a multiple of 200k, at least 200k
# per stream) to keep the run short.
set -euo pipefail
ARGV=("$@")
REF=${1:?usage: versus-cpp.sh REFERENCE_DIR [STEPS] [STREAMS ...]}
[[ -f $REF/run.sh ]] || { echo "versus-cpp.sh: no run.sh in $REF" >&2; exit 2; }
STEPS=${2:-5000000}
[[ $STEPS =~ ^[1-9][0-9]*$ ]] || { echo "versus-cpp.sh: STEPS=$STEPS must be a positive integer" >&2; exit 2; }
shift $(( $# >= 2 ? 2 : 1 ))
STREAMS=("$@"); [[ ${#STREAMS[@]} -gt 0 ]] || STREAMS=(1 8 64)
PY=${PYTHON:-python}
CPU=${CCN_CPU:-0}
cpp=$(CCN_CPU=$CPU bash "$REF/run.sh" "$STEPS" 2>/dev/null)
declare -A ARGS=(
  [columnar7]="--learner columnar --features 7 --alpha 1e-4"
  [constructive10]="--learner constructive --features 10 --stage-steps 200000 --alpha 1e-4"
  [ccn20x4]="--learner hybrid --features 20 --per-stage 4 --stage-steps 400000 --alpha 1e-4"
  [tbptt15x4]="--learner tbptt --features 4 --truncation 15 --alpha 1e-3"
)
t() {  # seconds of a run of $2 steps x $3 streams of learner $1 ("done in X s")
  taskset -c "$CPU" "$PY" -m study.run --task trace_patterning --lambda 0.99 --norm-rate 1e-5 \
    --seeds "$3" --threads 1 --steps "$2" ${ARGS[$1]} 2>&1 | grep -oE 'done in [0-9.]+' | awk '{print $3}'
}
declare -A LABEL=([columnar7]="columnar 7" [constructive10]="constructive 10:1"
                  [ccn20x4]="CCN 20:4" [tbptt15x4]="T-BPTT 15:4")
MD=()
group() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }  # 1234567 -> 1,234,567
printf '%-15s %7s %12s %16s %7s\n' learner streams cpp_steps_s ours_stream_steps_s ratio
for l in columnar7 constructive10 ccn20x4 tbptt15x4; do
  c=$(awk -v l=$l '$1==l{print $5}' <<<"$cpp")
  for s in "${STREAMS[@]}"; do
    n=$(( STEPS / s / 200000 * 200000 )); (( n >= 200000 )) || n=200000
    small=$(( n / 5 / 10000 * 10000 ))
    a=$(t "$l" "$small" "$s"); b=$(t "$l" "$n" "$s")
    o=$(awk -v a="$a" -v b="$b" -v x="$small" -v y="$n" -v s="$s" 'BEGIN{printf "%.0f", s*(y-x)/(b-a)}')
    r=$(awk -v o="$o" -v c="$c" 'BEGIN{printf "%.2f", o/c}')
    printf '%-15s %7s %12s %16s %7s\n' "$l" "$s" "$c" "$o" "$r"
    MD+=("$(printf '| %s | %s | %s | %s | %sx |' "${LABEL[$l]}" "$s" \
      "$(group "${c%.*}")" "$(group "$o")" "$r")")
  done
done
# The same as a Markdown table for the docs, with its footer: the command, the machine, jax,
# the commit and the date.
echo
echo "C++ steps per second on one stream; ours in stream-steps per second (the full loop: task,"
echo "learner and streaming MSRE; one XLA thread, the streams a trial's seeds); $STEPS steps, core $CPU."
echo
echo "| learner | streams | C++ steps/s | ccn-study stream-steps/s | ratio |"
echo "| --- | ---: | ---: | ---: | ---: |"
printf '%s\n' "${MD[@]}"
echo
"$PY" -c 'import sys; from study.cli import provenance; print(provenance(sys.argv[1]))' \
  "bash study/bench/versus-cpp.sh ${ARGV[*]}"
