"""Where accepted data goes besides /metrics: trace forwarding and the JSONL invocation log."""
