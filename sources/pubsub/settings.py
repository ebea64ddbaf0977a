"""The Pub/Sub source's settings: the subscription, which reader, Dataflow's id and timestamp attributes."""

from __future__ import annotations

from dataclasses import dataclass

from sources.pubsub.messages import SUBSCRIPTION_FORMAT, parse_subscription

READERS = ("client", "beam")


@dataclass(frozen=True)
class PubSubSourceSettings:
    subscription: str  # projects/PROJECT/subscriptions/NAME
    reader: str = "client"  # how a local run reads: the google-cloud-pubsub loop, or Beam's ReadFromPubSub
    id_label: str | None = None
    timestamp_attribute: str | None = None


def add_flags(parser) -> None:
    group = parser.add_argument_group("Pub/Sub (--source=pubsub, with --streaming)")
    group.add_argument(
        "--subscription",
        help="Pub/Sub subscription to read, projects/PROJECT/subscriptions/NAME (--source=pubsub). A "
             "message holds a LogEvent, a JSON array of them, an Event Hook or an EventBridge envelope.")
    group.add_argument(
        "--pubsub_reader", choices=READERS, default="client",
        help="How the local runner reads Pub/Sub: client pulls with google-cloud-pubsub and acknowledges "
             "a window's messages only after it is committed (a killed run loses nothing); beam runs "
             "Beam's ReadFromPubSub graph, the one Dataflow runs (locally it acknowledges on pull).")
    group.add_argument(
        "--id_label",
        help="Pub/Sub attribute with a unique message id, for Dataflow's own dedupe (the local loop "
             "dedupes on the events' uuid only).")
    group.add_argument(
        "--timestamp_attribute",
        help="Pub/Sub attribute holding the event time (RFC 3339 or epoch ms); default: publish time.")


def resolve(options, problems: list[str], *, source: str, streaming: bool) -> PubSubSourceSettings | None:
    """The Pub/Sub source's settings for ``--source=pubsub`` (None otherwise, or with problems appended)."""
    if source != "pubsub":
        return None
    if not streaming:
        problems.append("--source=pubsub needs --streaming")
        return None
    if not parse_subscription(options.subscription or ""):
        problems.append(f"--subscription is required with --source=pubsub, as {SUBSCRIPTION_FORMAT}"
                        + (f", not {options.subscription!r}" if options.subscription else ""))
        return None
    return PubSubSourceSettings(options.subscription, options.pubsub_reader, options.id_label,
                                options.timestamp_attribute)
