"""``agentprom demo``: realistic, clearly-marked agent traffic for a running sidecar (plan, send, command line)."""
