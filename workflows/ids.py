"""Workflow ids and task queues.

Ids are deterministic, so a duplicate start is refused by the server itself. Campaign workflows
and their activities run on a task queue of their own, so that starting the next page of
recipients never waits behind the workflow tasks and calls of the recipients already running.
"""

from __future__ import annotations

from temporalio.common import Priority

#: Single calls (POST /v1/calls, `redialer call`) share one fairness key, as they share one
#: group of the account's lines.
SINGLE_CALLS_KEY = "~calls"


def campaign_workflow_id(campaign_id: str) -> str:
    return f"campaign/{campaign_id}"


def recipient_workflow_id(campaign_id: str, recipient_key: str) -> str:
    """`recipient_key` is the number, or its pseudonym (`Pseudonyms.id_for`): the id is listed
    in clear wherever workflows are."""
    return f"campaign/{campaign_id}/recipient/{recipient_key}"


def campaign_task_queue(task_queue: str) -> str:
    """The control-plane queue beside `task_queue`: campaign workflows and their activities."""
    return f"{task_queue}-campaigns"


def dispatch_priority(campaign_id: str | None, weight: float = 1.0) -> Priority:
    """Temporal's task-queue fairness for a recipient: its workflow and dial tasks are handed to
    workers in proportion to the campaign's `priority`, so a small campaign's first dial is not
    queued behind a large one's backlog of retries (the store's fair share of lines cannot help
    a dial no worker has received). Ids are at most 100 characters; a fairness key at most 64
    bytes, so a long id is cut (two ids sharing 64 characters share a key: fair, not wrong)."""
    return Priority(
        fairness_key=(campaign_id or SINGLE_CALLS_KEY)[:64], fairness_weight=float(weight)
    )
