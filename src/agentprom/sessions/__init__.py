"""Runtime sessions and phases: model, tracker, continuity score, event validation, HTTP API."""
