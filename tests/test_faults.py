"""Faults: SIGTERM in the middle of load loses nothing that was accepted."""

from __future__ import annotations

import re
import time

from bench.soak import Sender, Sidecar, export_request


def test_sigterm_under_load_counts_every_accepted_span(tmp_path):
    config = {
        "server": {"otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0", "metrics": "127.0.0.1:0"},
        "queue": {"max_spans": 4096},
    }
    sidecar = Sidecar(config, tmp_path / "sidecar.log")
    try:
        now = time.monotonic()
        # stop_retrying=now: after the SIGTERM a sender gives up at its first failure
        senders = [
            Sender(protocol, sidecar.addresses[f"otlp_{protocol}"], export_request(128, n), 128, now + 60, now)
            for n, protocol in enumerate(["grpc", "grpc", "http", "http", "http"])
        ]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 30
        while sum(s.accepted for s in senders) < 20_000 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        exit_code = sidecar.stop()  # SIGTERM while the senders are still sending
    for sender in senders:
        sender.join(30)
        assert not sender.is_alive()
    log = (tmp_path / "sidecar.log").read_text()
    assert exit_code == 0, log
    accepted = sum(s.accepted for s in senders)
    sent = sum(s.sent for s in senders)
    counted = int(re.search(r"stopped: (\d+) spans received and counted in total", log)[1])
    assert accepted >= 20_000
    # every answered request was counted; at most the unanswered in-flight ones on top
    assert accepted <= counted <= sent, (accepted, counted, sent)
    assert "translation queue drained" in log
