"""Workflow ids: deterministic, so a duplicate start is refused by the server itself."""

from __future__ import annotations


def campaign_workflow_id(campaign_id: str) -> str:
    return f"campaign/{campaign_id}"


def recipient_workflow_id(campaign_id: str, e164: str) -> str:
    return f"campaign/{campaign_id}/recipient/{e164}"
