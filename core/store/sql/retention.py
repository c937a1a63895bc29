"""The SQL store's retention policies: set by RetentionSet events, read by
headwater.retention (which chooses the versions `gc --apply-retention` removes)."""

from __future__ import annotations

import sqlalchemy as sa

from headwater.events import RetentionSet
from headwater.models import RetentionPolicy
from headwater.store.schema import retention_policies
from headwater.store.sql.engine import SQLEngine


def apply_retention(conn: sa.Connection, ev: RetentionSet) -> None:
    # Under the write lock: a delete then an insert is an upsert on both databases.
    conn.execute(
        sa.delete(retention_policies).where(
            retention_policies.c.selector == ev.selector, retention_policies.c.value == ev.value
        )
    )
    if ev.remove:
        return
    conn.execute(
        sa.insert(retention_policies).values(
            selector=ev.selector,
            value=ev.value,
            keep_last=ev.keep_last,
            older_than_s=ev.older_than_s,
            protect_lineage=ev.protect_lineage,
            set_at=ev.time,
            who=ev.who,
        )
    )


class SQLRetention(SQLEngine):
    def retention_policies(self) -> list[RetentionPolicy]:
        query = sa.select(retention_policies).order_by(retention_policies.c.selector, retention_policies.c.value)
        with self._read() as conn:
            return [
                RetentionPolicy(
                    selector=row.selector,
                    value=row.value,
                    keep_last=row.keep_last,
                    older_than_s=row.older_than_s,
                    protect_lineage=row.protect_lineage,
                    set_at=row.set_at,
                    who=row.who,
                )
                for row in conn.execute(query)
            ]
