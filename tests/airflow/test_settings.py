"""[headwater] in airflow.cfg (here as AIRFLOW__HEADWATER__*) first, then HEADWATER_*, then defaults."""

from __future__ import annotations

import pytest

import headwater as hw
from headwater.adapters.airflow import settings
from tests.airflow.conftest import TEST_DATA
from tests.graphs import tries


def test_airflow_settings_win_and_typos_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_URI", "sqlite:////from/headwater.db")
    monkeypatch.setenv("HEADWATER_TIMEOUT_S", "3")
    # Nothing in airflow.cfg: the adapter leaves HEADWATER_* to headwater itself.
    assert settings.load() == settings.Settings()
    assert settings.observer(settings.load()).timeout == 3

    monkeypatch.setenv("AIRFLOW__HEADWATER__URI", "postgresql://db/lineage")
    monkeypatch.setenv("AIRFLOW__HEADWATER__TIMEOUT", "2.5")
    monkeypatch.setenv("AIRFLOW__HEADWATER__LINEAGE_SOURCES", " Inlets, hooks, bogus ")
    monkeypatch.setenv("AIRFLOW__HEADWATER__NAMESPACE", "prod")
    loaded = settings.load()
    assert (loaded.uri, loaded.timeout, loaded.sources, loaded.namespace) == (
        "postgresql://db/lineage",
        2.5,
        frozenset({"inlets", "hooks"}),
        "prod",
    )
    assert settings.observer(loaded).timeout == 2.5 and settings.observer(loaded).enabled

    monkeypatch.setenv("AIRFLOW__HEADWATER__TIMEOUT", "ten")  # a typo must not break a task
    assert settings.observer(settings.load()).timeout == 3


@pytest.mark.parametrize(
    ("variable", "value", "disabled"),
    [
        ("HEADWATER_DISABLED", "1", True),
        ("AIRFLOW__HEADWATER__DISABLED", "True", True),
        ("AIRFLOW__HEADWATER__DISABLED", "false", False),
        ("HEADWATER_DISABLED", "", False),
    ],
)
def test_disabled_from_either_place(variable: str, value: str, disabled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, value)
    assert settings.load().disabled is disabled
    assert settings.disabled_at_start() is disabled
    assert settings.observer(settings.load()).enabled is not disabled


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_lineage_sources_and_namespace_are_honoured(store: hw.Client, run_dag, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__HEADWATER__LINEAGE_SOURCES", "inlets,outlets")  # no events, no hooks
    monkeypatch.setenv("AIRFLOW__HEADWATER__NAMESPACE", "team-a")
    store.log_artifact("reference-data", _reference(), type="dataset")
    assert run_dag("hw_features").state == "success"
    graph = tries(store)
    assert sorted(ref for ref, (_, producer) in graph["versions"].items() if producer) == sorted(
        [f"{(TEST_DATA / 'flaky.txt').as_uri()}:v0", "weekly-report:v0", "daily-summary:v0"]
    )
    assert {run.job_namespace for run in store.runs()} == {"team-a"}


def _reference():
    path = TEST_DATA / "reference.csv"
    path.write_text("id\n1\n")
    return path
