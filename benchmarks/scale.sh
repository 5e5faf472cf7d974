#!/usr/bin/env bash
# The default-size run of the bundled agent at 1, 2, 4 and 8 MPI ranks on one machine, each rank
# given CORES_PER_RANK cores (taskset), so N ranks use N times the cores of one: prints each run's
# wall time, its speedup over one rank, the efficiency (speedup / N), and whether its output is
# byte-identical to the first run's. Ranks run largest first, so a budget cut leaves the most telling
# rows; a run predicted (from the last one, at perfect scaling) to overrun BUDGET_S is skipped.
#
#   benchmarks/scale.sh                         # 8 4 2 1 ranks, 2 cores each: 16 cores, about 8 min
#   RANKS="2 1" CORES_PER_RANK=1 benchmarks/scale.sh -- --num-steps 64   # a small check on 2 cores
#
# Needs mpiexec (the mpich wheel of the test extra puts one in .venv/bin) and taskset (util-linux).
# Every run starts from an empty cache. The last line is machine-readable:
# RESULT scale base_ranks=<b> ranks=<n,...> wall_s=<t,...> speedup=<s,...> efficiency=<e,...> identical=<yes|no>
# (speedup and efficiency are over the one-rank run, or over the fewest ranks measured if it was skipped)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MPIEXEC=${MPIEXEC:-$(dirname "$PY")/mpiexec}
RANKS=${RANKS:-8 4 2 1}
CORES_PER_RANK=${CORES_PER_RANK:-2}
BUDGET_S=${BUDGET_S:-480}
WORK=${WORK:-/tmp/rlv-scale}
[ "${1:-}" = "--" ] && shift
extra=("$@")
checkpoint=$("$PY" -c 'from understanding_rl_vision.demo import bundled_agent_path; print(bundled_agent_path())')
cores=$(nproc)
mkdir -p "$WORK"
started=$(date +%s)
declare -A wall same
first=""
identical=yes
for n in $RANKS; do
  need=$((n * CORES_PER_RANK))
  if [ "$need" -gt "$cores" ]; then echo "$n ranks: skipped, needs $need cores, this machine has $cores"; continue; fi
  if [ -n "$first" ]; then
    predicted=$("$PY" -c "print(int(${wall[$last]} * $last / $n))")
    left=$((BUDGET_S - ($(date +%s) - started)))
    if [ "$predicted" -gt "$left" ]; then echo "$n ranks: skipped, predicted ${predicted} s > ${left} s of budget left"; continue; fi
  fi
  out=$WORK/out-$n
  rm -rf "$out" "$out.cache"
  t0=$(date +%s.%N)
  taskset -c 0-$((need - 1)) "$MPIEXEC" -n "$n" "$PY" -m understanding_rl_vision run "$checkpoint" -o "$out" --quiet "${extra[@]}" > "$out.log" 2>&1 \
    || { echo "error: the $n-rank run failed; see $out.log"; exit 1; }
  wall[$n]=$("$PY" -c "print(round($(date +%s.%N) - $t0, 1))")
  same[$n]=yes
  if [ -z "$first" ]; then first=$n; elif ! diff -rq "$WORK/out-$first" "$out" > /dev/null; then same[$n]=no; identical=no; fi
  echo "$n ranks on $need cores: ${wall[$n]} s"
  last=$n
done
[ -n "$first" ] || { echo "error: no run fitted"; exit 1; }
# the baseline: one rank, or where that run was skipped, the fewest ranks measured (scaling from there)
base_n=$(for n in $RANKS; do if [ -n "${wall[$n]:-}" ]; then echo "$n"; fi; done | sort -n | head -1)
echo
echo "| ranks | cores | wall | speedup over $base_n rank(s) | efficiency | output identical to the first |"
echo "| ---: | ---: | ---: | ---: | ---: | --- |"
ranks=(); walls=(); speedups=(); efficiencies=()
for n in $RANKS; do
  [ -n "${wall[$n]:-}" ] || continue
  s=$("$PY" -c "print(f'{${wall[$base_n]} / ${wall[$n]}:.2f}')")
  e=$("$PY" -c "print(f'{${wall[$base_n]} * $base_n / (${wall[$n]} * $n):.2f}')")
  echo "| $n | $((n * CORES_PER_RANK)) | ${wall[$n]} s | ${s}x | $e | ${same[$n]} |"
  ranks+=("$n"); walls+=("${wall[$n]}"); speedups+=("$s"); efficiencies+=("$e")
done
join() { local IFS=,; echo "$*"; }
echo "RESULT scale base_ranks=$base_n ranks=$(join "${ranks[@]}") wall_s=$(join "${walls[@]}") speedup=$(join "${speedups[@]}") efficiency=$(join "${efficiencies[@]}") identical=$identical"
