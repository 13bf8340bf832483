"""The soak script in quick mode: spans sent = counted, refusals retried, clean SIGTERM exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_soak_over_http_loses_nothing():
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--quick", "--protocol", "http", "--senders", "12",
         "--max-queue-spans", "512"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["spans_counted"] == report["spans_accepted"] == report["spans_sent"] > 0
    assert report["lost"] == report["duplicated"] == report["spans_abandoned"] == 0
    # the client saw exactly the refusals the sidecar counted, and retried each
    assert report["refusals_by_code"].get("503", 0) == sum(report["server_refused_requests"].values())
    assert report["rss_samples"] and report["exit_code"] == 0
