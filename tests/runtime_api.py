"""Tiny JSON-over-HTTP helpers for the runtime API tests (real requests to a real sidecar).

``target`` is a ``Sidecar`` (tests/conftest.py) or the base URL of one running in another process.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def _base(target: Any) -> str:
    return target if isinstance(target, str) else target.http_url


def _call(request: urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def post_json(target: Any, path: str, document: Any) -> tuple[int, Any]:
    request = urllib.request.Request(_base(target) + path, data=json.dumps(document).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    return _call(request)


def get_json(target: Any, path: str) -> tuple[int, Any]:
    return _call(urllib.request.Request(_base(target) + path))
