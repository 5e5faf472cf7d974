#!/usr/bin/env bash
# Seed 003's generators on this machine: one chunk (at most 590 s) of `states train` for one agent
# and loss. The first call starts the training, later calls resume it; run it again until its
# log.csv has 20 epochs; a copy of the generator is kept every 4 epochs, to measure it against
# training time. docs/seeds.md (seed 003) has the tables they feed.
#
#   tools/seed003_train.sh AGENT LOSS [ROOT]    # AGENT: coinrun | breakout; LOSS: full | saliency | plain
set -euo pipefail
agent=${1:?usage: tools/seed003_train.sh AGENT LOSS [ROOT]}
loss=${2:?usage: tools/seed003_train.sh AGENT LOSS [ROOT]}
dir=${3:-runs/states}/$agent-$loss
case $agent in
  coinrun) checkpoint=bundled:coinrun ;;
  breakout) checkpoint=bundled:breakout-attention ;;
  *) echo "error: unknown agent $agent" >&2; exit 2 ;;
esac
case $loss in
  full) weights=() ;;
  saliency) weights=(--perception-weight 0) ;;
  plain) weights=(--saliency-weight 0 --perception-weight 0) ;;
  *) echo "error: unknown loss $loss" >&2; exit 2 ;;
esac
cli=(python -m understanding_rl_vision states train "$checkpoint" --save-dir "$dir" --quiet)
if [ -f "$dir/train_state.pt" ]; then
  timeout 590 "${cli[@]}" --resume --snapshot-every 4 || [ $? -eq 124 ]
else
  timeout 590 "${cli[@]}" --epochs 20 --seed 0 --snapshot-every 4 "${weights[@]}" || [ $? -eq 124 ]
fi
