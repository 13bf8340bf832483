"""``agentprom bench``: run agent benchmark scenarios against a sidecar and compare their results.

scenario.py (the YAML schema), plan.py (the synthetic workload's seeded plan and
ground truth), synthetic.py (emits a plan with the OpenTelemetry SDK),
command.py (runs a user's agent command), sidecar.py (the session API client),
records.py (the JSONL records), runner.py (runs a scenario), stats.py and
compare.py (regression detection). docs/bench.md describes all of it.
"""
