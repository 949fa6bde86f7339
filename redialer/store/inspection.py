"""Read-only lookups for inspecting a campaign while no worker can answer a query.

Apart from `Store`, the workers' gateway: nothing here writes, and each reads only the columns
it needs.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlmodel import Session, select

from redialer.store.store import Store, aware
from redialer.store.tables import CampaignRecipientRow


class RecipientStanding(NamedTuple):
    """Where one campaign recipient stands in the store."""

    state: str  # queued | started | final
    status: str | None  # its final status once final
    zone: str  # the zone its windows are read in
    dialing_since: datetime | None  # a call is up right now


def recipient_standing(store: Store, campaign_id: str, phone: str) -> RecipientStanding | None:
    """One recipient by its key, without loading the rest of a large campaign."""
    with Session(store.engine) as session:
        row = session.exec(
            select(
                CampaignRecipientRow.state,
                CampaignRecipientRow.status,
                CampaignRecipientRow.zone,
                CampaignRecipientRow.dialing_since,
            ).where(
                CampaignRecipientRow.campaign_id == campaign_id,
                CampaignRecipientRow.phone == phone,
            )
        ).first()
    if row is None:
        return None
    state, status, zone, since = row
    return RecipientStanding(state, status, zone, aware(since) if since is not None else None)
