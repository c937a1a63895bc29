"""A container's status from its children (headwater.observe.outcomes)."""

from __future__ import annotations

import pytest

from headwater.observe.outcomes import Outcome, status_from_children

RETRIED = Outcome("failed", error="busy", final=False)


@pytest.mark.parametrize(
    ("attempts", "planned", "expected"),
    [
        ([], ["a"], (None, None)),
        ([("a", Outcome("succeeded"))], ["a", "b"], (None, None)),  # b not ended yet
        ([("a", Outcome("succeeded")), ("b", Outcome("skipped"))], ["a", "b"], ("succeeded", None)),
        ([("a", Outcome("succeeded")), ("b", Outcome("succeeded"))], None, (None, None)),  # plan unknown
        ([("b", Outcome("failed")), ("a", Outcome("failed"))], None, ("failed", "steps failed: a, b")),
        ([("a", RETRIED), ("a", Outcome("running"))], ["a"], (None, None)),  # a retried attempt fails nothing
        ([("a", RETRIED), ("a", Outcome("succeeded"))], ["a"], ("succeeded", None)),
    ],
)
def test_a_container_is_decided_by_its_children(attempts, planned, expected) -> None:
    assert status_from_children(attempts, planned) == expected
