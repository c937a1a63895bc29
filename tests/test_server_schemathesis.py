"""schemathesis against a real server's OpenAPI schema: whatever it generates, valid or not, no
answer is a 5xx, and every answer matches the schema. A bounded run (25 examples per operation)
in `make test`; `nox -s schemathesis_long` sets HEADWATER_SCHEMATHESIS_EXAMPLES for a long one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from headwater.server.run import MAX_REQUEST_HEAD
from tests.conftest import ServerProcess

# Headers that frame the HTTP message are the HTTP layer's, not the API's: uvicorn (h11) answers
# a malformed one (an empty Content-Length) itself, in text/plain, before the application runs.
FRAMING = {"content-length", "transfer-encoding", "host", "connection", "expect"}
EXAMPLES = int(os.environ.get("HEADWATER_SCHEMATHESIS_EXAMPLES", "25"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The session's server over SQLite or PostgreSQL (PostgreSQL refuses what SQLite takes: NUL)."""
    server: ServerProcess = request.getfixturevalue(
        "headwater_server" if request.param == "sqlite" else "headwater_server_postgres"
    )
    server.reset()
    seen = len(Path(server.log).read_text())
    yield server
    server.reset()
    assert "Traceback (most recent call last)" not in Path(server.log).read_text()[seen:]  # none inside


def _check_operation(operation, mode) -> None:
    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the time stays bounded
    )
    def check(case) -> None:
        for name in [name for name in case.headers or {} if name.lower() in FRAMING]:
            del case.headers[name]
        if len(case.formatted_path) + len(urlencode(case.query or {}, doseq=True)) > MAX_REQUEST_HEAD:
            # Past the HTTP layer's limit the request never reaches the API: h11 answers 400 and
            # closes, and a client still sending may see the connection reset instead.
            try:
                answer = case.call(timeout=30)
            except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError):
                return
            assert answer.status_code == 400, answer.status_code
            return
        case.call_and_validate(
            timeout=30,
            checks=[not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance],
        )

    check()


# schemathesis' own pytest integration (from_fixture) does not run under pytest 9, so the same
# engine is driven here: hypothesis strategies per operation from the schema the server serves.
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_no_request_gets_a_server_error(live_server: ServerProcess, mode: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    for operation in operations:
        try:
            _check_operation(operation, GenerationMode(mode))
        except Unsatisfiable:
            continue  # nothing invalid can be made for it (say, no parameters at all)
        except Exception as err:
            raise AssertionError(f"{operation.label} ({mode}): {err}") from err
