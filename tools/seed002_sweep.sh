#!/usr/bin/env bash
# Seed 002's experiment on this machine: one chunk (at most 590 s) of the Breakout run for one
# attention-entropy coefficient. The first call starts the run, later calls resume it; run it again
# until log.csv reaches 1,000,448 steps (977 updates). docs/seeds.md has the table it feeds.
#
#   tools/seed002_sweep.sh LAMBDA [ROOT]     # ROOT defaults to runs/attention-breakout
set -euo pipefail
lambda=${1:?usage: tools/seed002_sweep.sh LAMBDA [ROOT]}
dir=${2:-runs/attention-breakout}/lambda-$lambda
cli=(python -m understanding_rl_vision train --save-dir "$dir" --quiet)
settings=(
  --env ALE/Breakout-v5 --architecture attention --attention-heads 2 --attention-entropy-coef "$lambda"
  --num-envs 8 --num-steps 128 --num-minibatches 4 --update-epochs 4
  --learning-rate 2.5e-4 --gamma 0.99 --clip-coef 0.1
  --total-steps 1000000 --save-every 20 --seed 1
)
if [ -f "$dir/checkpoint.safetensors" ]; then
  timeout 590 "${cli[@]}" --resume || [ $? -eq 124 ]
else
  timeout 590 "${cli[@]}" "${settings[@]}" || [ $? -eq 124 ]
fi
