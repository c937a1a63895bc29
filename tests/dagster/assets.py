"""Two assets the Dagster tests share: `greetings` loads `users` through the IO manager."""

# No `from __future__ import annotations`: Dagster reads these annotations at definition time.
import dagster as dg


@dg.asset
def users() -> list[str]:
    return ["ada", "grace"]


@dg.asset
def greetings(users: list[str]) -> list[str]:
    return [f"hello {u}" for u in users]
