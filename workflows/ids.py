"""Workflow ids and task queues.

Ids are deterministic, so a duplicate start is refused by the server itself. Campaign workflows
and their activities run on a task queue of their own, so that starting the next page of
recipients never waits behind the workflow tasks and calls of the recipients already running.
"""

from __future__ import annotations


def campaign_workflow_id(campaign_id: str) -> str:
    return f"campaign/{campaign_id}"


def recipient_workflow_id(campaign_id: str, e164: str) -> str:
    return f"campaign/{campaign_id}/recipient/{e164}"


def campaign_task_queue(task_queue: str) -> str:
    """The control-plane queue beside `task_queue`: campaign workflows and their activities."""
    return f"{task_queue}-campaigns"
