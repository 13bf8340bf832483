"""Where records go besides /metrics: the JSONL invocation log."""
