"""The trace-context stage: each span's agent, invocation role and nested calls, from its trace tree."""
