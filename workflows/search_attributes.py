"""The search attributes that let the Web UI filter a campaign's recipients by status.

`redialer server` and docker-compose register them; the worker refuses to start without them,
because a workflow that upserts an unregistered attribute is stuck until someone registers it.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CAMPAIGN_ID = SearchAttributeKey.for_keyword("CampaignId")
RECIPIENT_PHONE = SearchAttributeKey.for_keyword("RecipientPhone")
CALL_STATUS = SearchAttributeKey.for_keyword("CallStatus")
ATTEMPT_COUNT = SearchAttributeKey.for_int("AttemptCount")

ALL = (CAMPAIGN_ID, RECIPIENT_PHONE, CALL_STATUS, ATTEMPT_COUNT)

#: CallStatus while a recipient is not final yet; afterwards its FinalStatus value.
IN_PROGRESS = "in_progress"
