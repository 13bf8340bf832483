"""Tiny JSON-over-HTTP helpers for the runtime API tests (real requests to a real sidecar)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def post_json(sidecar, path: str, document: Any) -> tuple[int, Any]:
    status, _headers, body = sidecar.post(path, json.dumps(document).encode(), {"Content-Type": "application/json"})
    return status, json.loads(body)


def get_json(sidecar, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(sidecar.http_url + path, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
