"""Answer rates from the call records: one grouped query by the recipient's local hour of week.

Read-only, and no schema change: a call's local hour comes from its start and its recipient's
zone (`campaign_recipients.zone`, the zone its windows were read in), worked out inside the
database (PostgreSQL with `AT TIME ZONE`; SQLite, which has no time zones, through a function
registered on the connection for the query). The answer is at most 168 rows, however long the
history; `limit` bounds the work to the newest calls.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, and_, case, cast, func, literal, literal_column, select, table

from redialer.answer_rates import AnswerRates, HourCount
from redialer.outcomes import Outcome
from redialer.store.store import Store
from redialer.store.tables import CallRecordRow, CampaignRecipientRow
from redialer.zones import load_zone

#: The newest calls a query reads by default: some 600 per hour of the week, plenty to learn
#: from, and a bounded cost however many years of records the store holds.
DEFAULT_LIMIT = 100_000

_SQLITE_FUNCTION = "redialer_hour_of_week"


def answer_rate_rows(
    store: Store,
    *,
    campaign_ids: list[str] | None = None,
    since: datetime | None = None,
    limit: int | None = DEFAULT_LIMIT,
) -> AnswerRates:
    """Calls placed and answered by a person (outcome `completed`) per local hour of the week.

    Only calls that were dialed count (not one ended without a call, such as `dnd`), of the
    campaigns named (None: every campaign), started at or after `since`, the newest `limit` of
    them (None: all). A call with no recipient row (a single call outside any campaign) has no
    known zone and is left out.
    """
    if since is not None and since.tzinfo is None:
        raise ValueError(f"since: {since!r}: must be timezone-aware (a UTC offset or Z)")
    if limit is not None and limit < 1:
        raise ValueError(f"limit: {limit!r}: must be at least 1, or None for every call")
    calls = _calls(campaign_ids=campaign_ids, since=since, limit=limit)
    postgres = store.engine.dialect.name == "postgresql"
    hours = _postgres_hours(calls) if postgres else _sqlite_hours(calls)
    answered = func.sum(case((hours.c.outcome == Outcome.COMPLETED.value, 1), else_=0))
    query = (
        select(hours.c.how, func.count().label("calls"), answered.label("answered"))
        .select_from(hours)
        .group_by(hours.c.how)
    )
    with store.engine.connect() as connection:
        if not postgres:
            connection.connection.driver_connection.create_function(  # type: ignore[union-attr]
                _SQLITE_FUNCTION, 2, _sqlite_hour_of_week, deterministic=True
            )
        rows = connection.execute(query).all()
    return AnswerRates.from_rows(
        HourCount(int(r.how) // 24, int(r.how) % 24, int(r.calls), int(r.answered or 0))
        for r in rows
        if r.how is not None
    )


def _calls(*, campaign_ids: list[str] | None, since: datetime | None, limit: int | None) -> Any:
    """The dialed calls to count, each with its recipient's zone: a subquery."""
    records = CallRecordRow.__table__.c  # type: ignore[attr-defined]
    recipients = CampaignRecipientRow.__table__.c  # type: ignore[attr-defined]
    query = (
        select(records.started_at, records.outcome, recipients.zone)
        .select_from(
            CallRecordRow.__table__.join(  # type: ignore[attr-defined]
                CampaignRecipientRow.__table__,  # type: ignore[attr-defined]
                and_(
                    recipients.campaign_id == records.campaign_id,
                    recipients.phone == records.phone,
                ),
            )
        )
        .where(records.dialed.is_(True))
    )
    if campaign_ids is not None:
        query = query.where(records.campaign_id.in_(campaign_ids))
    if since is not None:
        query = query.where(records.started_at >= since)
    if limit is not None:
        query = query.order_by(records.started_at.desc()).limit(limit)
    return query.subquery("calls")


def _postgres_hours(calls: Any) -> Any:
    """Each call's (ISO weekday - 1) x 24 + hour on the recipient's clock, and its outcome. A
    zone PostgreSQL's own zone data lacks (one newer than the server's) is read as UTC rather
    than failing the query; the local time is computed once per call, in a subquery."""
    known: Any = select(literal_column("name")).select_from(table("pg_timezone_names"))
    zone = case((calls.c.zone.in_(known), calls.c.zone), else_=literal("UTC"))
    local = select(
        func.timezone(zone, calls.c.started_at).label("local"), calls.c.outcome
    ).subquery("local_calls")
    how = (func.extract("isodow", local.c.local) - 1) * 24 + func.extract("hour", local.c.local)
    return select(cast(how, Integer).label("how"), local.c.outcome).subquery("hours")


def _sqlite_hours(calls: Any) -> Any:
    """The same through `_sqlite_hour_of_week`, registered on the connection for the query."""
    how = getattr(func, _SQLITE_FUNCTION)(calls.c.started_at, calls.c.zone)
    return select(how.label("how"), calls.c.outcome).subquery("hours")


def _sqlite_hour_of_week(started_at: str | None, zone: str | None) -> int | None:
    """The SQLite function: the start is stored as UTC text (`UtcDateTime`)."""
    if started_at is None:
        return None
    start = datetime.fromisoformat(started_at)
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    try:
        local = start.astimezone(load_zone(zone or "UTC"))
    except ValueError:  # a zone this machine's zone data lacks: UTC, as on PostgreSQL
        local = start
    return local.weekday() * 24 + local.hour
