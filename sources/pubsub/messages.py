"""Pub/Sub subscriptions and messages, without Beam: the subscription's name format, a message as a batch.

Shared by Beam's reader (:mod:`sources.pubsub.beam`) and the local loop (:mod:`streaming.pubsub_loop`).
"""

from __future__ import annotations

from transforms.records import RawBatch

SUBSCRIPTION_FORMAT = "projects/PROJECT/subscriptions/NAME"


def parse_subscription(value: str) -> tuple[str, str] | None:
    parts = (value or "").split("/")
    if len(parts) == 4 and parts[0] == "projects" and parts[2] == "subscriptions" and parts[1] and parts[3]:
        return parts[1], parts[3]
    return None


ORG_ATTRIBUTE = "okta_org"


def message_batch(message, subscription: str) -> RawBatch:
    """One Pub/Sub message as a batch of one payload, positioned by its message id.

    A message attribute ``okta_org`` (the org's host) fills the ``okta_org`` column of its events;
    without it the column takes ``--okta_org`` (or null).
    """
    message_id = getattr(message, "message_id", None) or ""
    attributes = dict(getattr(message, "attributes", None) or {})
    context = {"message_id": message_id, "attributes": attributes}
    publish_time = getattr(message, "publish_time", None)
    if publish_time is not None:
        context["publish_time"] = str(publish_time)
    org = (attributes.get(ORG_ATTRIBUTE) or "").strip().lower() or None
    return RawBatch(subscription, "message", [message_id], [message.data or b""], context, org=org)
