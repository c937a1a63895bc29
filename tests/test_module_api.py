"""The module-level functions (`hw.get`, `hw.impact`, ...) are the default client's methods:
each must take exactly the parameters of the Client method it forwards to."""

from __future__ import annotations

import inspect

import headwater as hw


def test_every_module_function_takes_its_client_methods_parameters() -> None:
    checked = []
    for name in hw.__all__:
        function, method = getattr(hw, name), getattr(hw.Client, name, None)
        if not inspect.isfunction(function) or method is None or not callable(method):
            continue
        wanted = [p for p in inspect.signature(method).parameters if p != "self"]
        given = inspect.signature(function).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in given.values()):  # forwards the rest
            named = [p for p in given if given[p].kind is not inspect.Parameter.VAR_KEYWORD]
            assert named == wanted[: len(named)], name
        else:
            assert list(given) == wanted, name
        checked.append(name)
    assert {"get", "impact", "diff", "upstream", "link", "alias"} <= set(checked)


def test_the_module_impact_asks_about_a_version(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "home"))
    export = tmp_path / "users.csv"
    export.write_text("id\n1\n")
    hw.log_artifact("users", export)
    assert [v.ref for v in hw.impact(ref="users:v0").holding] == ["users:v0"]
