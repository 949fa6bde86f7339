"""The workflow sandbox as redialer needs it, shared by the worker and the Replayer.

Payloads validate phone numbers while they are decoded inside the sandbox, and `phonenumbers`
loads each country's metadata lazily (under a thread lock) the first time it meets it: such an
import must happen outside the sandbox, or the first payload from a new country fails the task.
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

#: Deterministic, side-effect-free libraries the workflows (and their payloads) use.
PASSTHROUGH = ("phonenumbers", "pydantic", "pydantic_core", "zoneinfo", "tzdata")

WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
)
