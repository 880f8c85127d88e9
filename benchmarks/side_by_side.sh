#!/bin/bash
# Speed of our Mask R-CNN beside torchvision's on the same synthetic work, one run after the other, and the
# ratios. Usage: bash benchmarks/side_by_side.sh [--steps 10]   (prints JSON lines; about 6 minutes here)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python}
peer=$(bash "${PEER_SCRIPT:-$here/../../shared/bench/peer_torchvision.sh}" --image-size 256 --batch-size 1 "$@")
ours=$("$python" "$here/speed.py" --image-size 256 --batch-size 1 "$@")
ours_bn=$("$python" "$here/speed.py" --image-size 256 --batch-size 1 --norm frozen_bn --no-ours "$@")
echo "$peer"
echo "$ours"
echo "$ours_bn"
"$python" - "$peer" "$ours" "$ours_bn" <<'PY'
import json, sys
peer, ours, ours_bn = (json.loads(line) for line in sys.argv[1:])
for name, run in (("group_norm", ours), ("frozen_bn", ours_bn)):
    print(json.dumps({"ratio_to_torchvision": name,
                      "train_step": round(run["train_step_ms"] / peer["train_step_ms"], 3),
                      "inference": round(run["inference_ms"] / peer["inference_ms"], 3)}))
PY
