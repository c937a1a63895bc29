"""The module-level functions (`hw.get`, `hw.impact`, ...) are the default client's methods:
each must take exactly the parameters of the Client method it forwards to, spelled out (no
`*args`/`**kwargs` pass-through, so help(), IDEs and type checkers see them), and every public
name has a docstring."""

from __future__ import annotations

import inspect

import headwater as hw

# Client methods that take **kwargs for another method: the module function spells out that
# method's keyword-only parameters instead, less those the forwarding method sets itself.
KWARGS_FOR = {"log_reference": ("log_artifact", {"store"})}


def _module_functions() -> list[str]:
    """The functions defined in headwater/__init__.py (`hw.run_id` lives in headwater.api)."""
    return [
        name
        for name in hw.__all__
        if inspect.isfunction(getattr(hw, name)) and getattr(hw, name).__module__ == "headwater"
    ]


def _wanted(name: str) -> list[inspect.Parameter]:
    method = inspect.signature(getattr(hw.Client, name))
    wanted = [p for p in method.parameters.values() if p.name != "self"]
    if wanted and wanted[-1].kind is inspect.Parameter.VAR_KEYWORD:
        target, set_here = KWARGS_FOR[name]
        target_params = inspect.signature(getattr(hw.Client, target)).parameters.values()
        wanted = wanted[:-1] + [
            p for p in target_params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in set_here
        ]
    return wanted


def test_every_module_function_takes_its_client_methods_parameters() -> None:
    checked = []
    for name in _module_functions():
        function, method = getattr(hw, name), getattr(hw.Client, name, None)
        if method is None or not callable(method):
            continue
        given = inspect.signature(function)
        # Names, kinds (keyword-only markers), defaults and annotations, in order.
        assert list(given.parameters.values()) == _wanted(name), name
        assert given.return_annotation == inspect.signature(method).return_annotation, name
        checked.append(name)
    assert {
        "get",
        "impact",
        "diff",
        "upstream",
        "downstream",
        "link",
        "alias",
        "run",
        "log_artifact",
        "log_reference",
        "artifacts",
        "versions",
        "runs",
        "sync",
        "tag",
    } <= set(checked)


def test_no_module_function_passes_args_or_kwargs_through() -> None:
    for name in _module_functions():
        method = getattr(hw.Client, name, None)
        allowed = set()
        if method is not None:  # `hw.tag(ref, *tags)` is the Client's own `*tags`
            allowed = {
                p.name
                for p in inspect.signature(method).parameters.values()
                if p.kind is inspect.Parameter.VAR_POSITIONAL
            }
        for param in inspect.signature(getattr(hw, name)).parameters.values():
            assert param.kind is not inspect.Parameter.VAR_KEYWORD, f"hw.{name}(**{param.name})"
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                assert param.name in allowed, f"hw.{name}(*{param.name})"


def test_the_module_impact_takes_read_files_and_artifacts_its_paging() -> None:
    impact = inspect.signature(hw.impact).parameters["read_files"]
    assert (impact.kind, impact.default) == (inspect.Parameter.KEYWORD_ONLY, True)
    artifacts = inspect.signature(hw.artifacts).parameters
    for name, default in (("tag", None), ("order", "name"), ("offset", 0)):
        param = artifacts[name]
        assert (param.kind, param.default) == (inspect.Parameter.KEYWORD_ONLY, default)


def test_every_public_name_has_a_docstring() -> None:
    missing = []
    for name in hw.__all__:
        obj = getattr(hw, name)
        # A class's own docstring: inspect.getdoc would hand back pydantic's BaseModel's.
        doc = vars(obj).get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
        if not (doc and doc.strip()):
            missing.append(name)
    assert missing == []


def test_the_module_impact_asks_about_a_version(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "home"))
    export = tmp_path / "users.csv"
    export.write_text("id\n1\n")
    hw.log_artifact("users", export)
    assert [v.ref for v in hw.impact(ref="users:v0").holding] == ["users:v0"]


def test_the_module_functions_forward_their_keyword_arguments(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "home"))
    export = tmp_path / "users.csv"
    export.write_text("id\n1\n")
    with hw.run("export", params={"day": 1}) as active:
        logged = hw.log_artifact("users", export, type="dataset", tags=["pii"], run=active.id)
    assert (logged.type, logged.tags, logged.produced_by) == ("dataset", ["pii"], active.id)
    assert hw.runs(job="export")[0].params == {"day": 1}
    assert [a.name for a in hw.artifacts(tag="pii", order="updated", offset=0)] == ["users"]
    assert hw.artifacts(tag="pii", offset=1) == []
    assert [v.ref for v in hw.versions("users", tags=["pii"])] == ["users:v0"]
    # The file's bytes find it; read_files=False matches the path only as recorded ("users.csv").
    assert [v.ref for v in hw.impact(path=export).holding] == ["users:v0"]
    assert [v.ref for v in hw.impact(path=export, read_files=False).holding] == []
