#!/usr/bin/env bash
# The manual three-step lineage: a dataset and a training run through the Python API, then a
# quantization done by hand attached with `headwater log`, promoted with `headwater alias`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${HEADWATER_HOME:-}" ]; then
  HEADWATER_HOME="$(mktemp -d "${TMPDIR:-/tmp}/headwater-demo.XXXXXX")"
fi
export HEADWATER_HOME
work="$HEADWATER_HOME/work"
mkdir -p "$work"

echo "== 1-2. log a dataset, train a model on it (Python API)"
python "$here/train.py" "$work"

echo
echo "== 3. a quantization done by hand, attached afterwards (CLI)"
python - "$work" <<'PY'
import json, sys, pathlib
work = pathlib.Path(sys.argv[1])
model = json.loads((work / "churn-model.json").read_text())
(work / "churn-model-int8.json").write_text(json.dumps({k: round(v * 255) for k, v in model.items()}))
PY
headwater log --job quantize-int8 --input churn-model:candidate \
  --output "churn-model-int8=$work/churn-model-int8.json" --type churn-model-int8=model \
  --param bits=8
headwater alias churn-model-int8:latest production

echo
echo "== what is in production, and what was it trained on?"
headwater upstream churn-model-int8:production

echo
hw="$(command -v headwater)"
echo "The graph lives in $HEADWATER_HOME. Explore it:"
echo "  HEADWATER_HOME=$HEADWATER_HOME $hw upstream churn-model-int8:production"
echo "  HEADWATER_HOME=$HEADWATER_HOME $hw downstream users:v0"
echo "  HEADWATER_HOME=$HEADWATER_HOME $hw ls"
