#!/bin/bash
# Speed of our Mask R-CNN beside torchvision's on the same synthetic work, one run after the other, and the
# ratios. Usage: bash benchmarks/side_by_side.sh [--rounds N] [--steps 10]   (--rounds, if given, comes first)
# Each round runs torchvision's script, ours with GroupNorm and ours with frozen BatchNorm (about 9 minutes here),
# torchvision first in odd rounds and last in even ones, so that a machine slowing down or speeding up during the
# run does not favour either side. Prints every JSON line, each round's ratios, and with several rounds the median
# of the rounds' ratios. Stops at the first run that fails. PEER_SCRIPT names the script that times torchvision
# (docs/performance.md says what it prints); without it, the project's own, beside the checkout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python}
rounds=1
if [[ ${1:-} == --rounds ]]; then
  rounds=${2:-}
  if ! [[ $rounds =~ ^[1-9][0-9]*$ ]]; then
    echo "side_by_side.sh: --rounds takes a positive whole number, got '$rounds'" >&2
    exit 2
  fi
  shift 2
fi
peer_script=${PEER_SCRIPT:-$here/../../shared/bench/peer_torchvision.sh}
if [[ ! -f $peer_script ]]; then
  echo "side_by_side.sh: torchvision's timing script $peer_script not found: set PEER_SCRIPT to a script that" \
    "times torchvision's Mask R-CNN and prints one JSON line with train_step_ms and inference_ms" \
    "(docs/performance.md, How to measure)" >&2
  exit 2
fi
lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
peer() {
  local out
  out=$(bash "$peer_script" --image-size 256 --batch-size 1 "$@")
  echo "peer $out" >> "$lines"
}
ours() {
  local out more=()
  if ((round > 1)); then more=(--no-ours); fi  # our own defaults' figures once is enough
  out=$("$python" "$here/speed.py" --image-size 256 --batch-size 1 ${more[@]+"${more[@]}"} "$@")
  echo "group_norm $out" >> "$lines"
  out=$("$python" "$here/speed.py" --image-size 256 --batch-size 1 --norm frozen_bn --no-ours "$@")
  echo "frozen_bn $out" >> "$lines"
}
for ((round = 1; round <= rounds; round++)); do
  echo "round $round" >> "$lines"
  if ((round % 2)); then peer "$@"; ours "$@"; else ours "$@"; peer "$@"; fi
done
"$python" "$here/side_by_side_ratios.py" < "$lines"
