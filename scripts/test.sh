#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite. This is the README's test command;
# .ci/run calls it. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== installing agentprom with its test dependencies" >&2
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e '.[test]'
echo "== fetching external tools" >&2
bash scripts/fetch-tools.sh
echo "== running tests" >&2
exec python3 -m pytest "$@"
