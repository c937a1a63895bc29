"""A step done by hand, outside any orchestrator: int8-quantize the evaluated churn model.

Reads the model and the evaluation report through headwater (what is registered, not a path
someone remembers), keeps the report's decision threshold, and writes the weights as int8 with
one scale. It records nothing itself: `headwater log` attaches it to the graph afterwards.

    python quantize.py churn_model:v0 churn_report:v0 churn_model_int8.json
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import headwater as hw


def quantize(model_ref: str, report_ref: str, out: Path) -> dict[str, float]:
    with open(hw.get(model_ref).path, "rb") as f:
        scaler, classifier = (step for _, step in pickle.load(f).steps)
    report = json.loads(hw.get(report_ref).path.read_text())
    weights = [float(w) for w in classifier.coef_[0]]
    scale = max(abs(w) for w in weights) / 127
    out.write_text(
        json.dumps(
            {
                "features_mean": [float(m) for m in scaler.mean_],
                "features_scale": [float(s) for s in scaler.scale_],
                "weights_int8": [round(w / scale) for w in weights],
                "weight_scale": scale,
                "bias": float(classifier.intercept_[0]),
                "threshold": report["threshold"],
            },
            indent=2,
        )
        + "\n"
    )
    return {"bits": 8, "max_weight_error": round(max(abs(w - round(w / scale) * scale) for w in weights), 6)}


if __name__ == "__main__":
    model_ref, report_ref, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    print(json.dumps(quantize(model_ref, report_ref, out)))
