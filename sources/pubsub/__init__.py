"""Google Cloud Pub/Sub: subscriptions, messages as batches, Beam's reader."""
