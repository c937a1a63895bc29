"""examples/manual/demo.sh (the manual three-step lineage), run as a user would: the exact lineage of production."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_demo_prints_the_lineage_of_production(tmp_path: Path) -> None:
    env = {**os.environ, "HEADWATER_HOME": str(tmp_path / "demo")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        ["bash", str(ROOT / "examples/manual/demo.sh")], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    tree = re.sub(r"run [0-9a-f]{12}", "run ID", done.stdout.split("what was it trained on?\n", 1)[1])
    assert tree.splitlines()[:5] == [
        "churn-model-int8:v0 (model) [latest, production]",
        "└── quantize-int8 (manual, succeeded) run ID",
        "    └── churn-model:v0 (model) [latest, candidate]",
        "        └── train-churn (manual, succeeded) run ID",
        "            └── users:v0 (dataset) [latest]",
    ]
    assert f"HEADWATER_HOME={tmp_path / 'demo'}" in done.stdout
