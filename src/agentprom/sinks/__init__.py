"""Sinks: where accepted spans go besides the metrics (trace forwarding, logs)."""
