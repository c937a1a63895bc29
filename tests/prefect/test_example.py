"""examples/prefect/churn.py as the README shows it: a saved block, loaded lazily, one line."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pytest

import headwater as hw
from headwater.adapters.prefect import HeadwaterTracker
from tests.graphs import rows

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "prefect" / "churn.py"
CRM = "postgres://crm.internal:5432/crm.public.users"


def test_the_churn_example(store_uri: str, store: hw.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = f"churn-test-{uuid.uuid4().hex[:8]}"
    HeadwaterTracker(uri=store_uri).save(block, overwrite=True)
    monkeypatch.setenv("HEADWATER_BLOCK", block)
    monkeypatch.setenv("CHURN_WORKDIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location(f"churn_example_{block.replace('-', '_')}", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importing makes no API call: the block loads in the first hook

    assert module.main([]) == 0
    exports = ("export/users_eu.csv:v0", "export/users_us.csv:v0")
    assert rows(store, tmp_path) == [
        ("churn-pipeline", "container", "succeeded", None, exports, ("churn-model:v0",)),
        (
            "churn-pipeline.build_features",
            "task",
            "succeeded",
            "churn-pipeline",
            ("clean/users_eu.csv:v0", "clean/users_us.csv:v0"),
            ("features.json:v0",),
        ),
        ("churn-pipeline.clean", "task", "succeeded", "churn-pipeline", (exports[0],), ("clean/users_eu.csv:v0",)),
        ("churn-pipeline.clean", "task", "succeeded", "churn-pipeline", (exports[1],), ("clean/users_us.csv:v0",)),
        (
            "churn-pipeline.publish_report",
            "task",
            "succeeded",
            "churn-pipeline",
            ("churn-model:v0", f"{CRM}:v0"),
            ("report.md:v0",),
        ),
        ("churn-pipeline.train", "task", "succeeded", "churn-pipeline", ("features.json:v0",), ("churn-model:v0",)),
    ]
    model = store.get("churn-model")
    assert (model.type, model.metadata, model.path) == ("model", {"buckets": 2}, tmp_path / "model.json")
    assert store.get((tmp_path / "report.md").as_uri()).metadata == {"buckets": 2}
    assert {
        (e.version, e.exact)
        for e in store.upstream((tmp_path / "report.md").as_uri()).edges
        if e.version.startswith(CRM)
    } == {(f"{CRM}:v0", False)}
