#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite. This is the README's test command;
# .ci/run calls it. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# The real PostgreSQL and Redis servers that tests/servers.py starts come from Debian's postgresql
# and redis-server packages. They are installed system-wide with apt-get, so this is not in
# scripts/tools.d/ (which only unpacks tools into .tools/). Installed only when missing, and only
# as root; otherwise what is missing is printed and the tests that need it fail saying so.
missing_server_packages() {
  local dir postgres=""
  for dir in /usr/lib/postgresql/*/bin; do  # where Debian puts each major version's binaries
    if [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ]; then postgres="$dir"; fi
  done
  if [ -z "$postgres" ] && ! { command -v postgres && command -v initdb; } >/dev/null; then
    echo -n "postgresql "
  fi
  command -v redis-server >/dev/null || echo -n "redis-server "
}

install_servers() {
  local missing
  missing="$(missing_server_packages)"
  [ -n "$missing" ] || return 0
  if [ "$EUID" -ne 0 ]; then
    echo "== not root: not installing the Debian packages ${missing% }; the PostgreSQL/Redis tests" \
      "fail without them (as root: apt-get install ${missing% })" >&2
    return 0
  fi
  echo "== installing Debian packages: ${missing% }" >&2
  # Keep the packages from starting their system-wide services (a main PostgreSQL cluster on 5432,
  # Redis on 6379): the tests start servers of their own. policy-rc.d is Debian's switch for that.
  local policy=/usr/sbin/policy-rc.d added_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# added by agentprom scripts/test.sh during apt-get install\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    added_policy="$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  # shellcheck disable=SC2086 # $missing is a list of package names
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 \
      $missing >/dev/null 2>&1; then
    echo "== apt-get install failed; running apt-get update once" >&2
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 \
      $missing >/dev/null
  fi
  if [ -n "$added_policy" ]; then
    rm -f "$added_policy"
    trap - EXIT
  fi
  missing="$(missing_server_packages)"
  if [ -n "$missing" ]; then
    echo "== still missing after apt-get install: ${missing% }" >&2
    return 1
  fi
}

echo "== installing agentprom with its test dependencies" >&2
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e '.[test]'
echo "== fetching external tools" >&2
bash scripts/fetch-tools.sh
echo "== PostgreSQL and Redis servers" >&2
install_servers
echo "== running tests" >&2
# The install above builds the compiled trace decoder (src/agentprom/receiver/_wire.pyx), classification
# (src/agentprom/conventions/_classify.pyx), trace-context batch path (src/agentprom/context/_batch.pyx) and
# session tracker's span loop (src/agentprom/sessions/_spans.pyx), which the whole suite then runs with; a build that lost one fails
# tests/test_wire.py or the test_*_compiled.py of its part instead of testing the Python path twice. First, every module that decodes OTLP/protobuf, and those that count recorded frameworks' spans or
# place spans in their traces, run on the Python paths (about a minute): a machine without a C compiler runs
# those, and they must stay right.
echo "== the OTLP/protobuf modules on the Python paths (AGENTPROM_PURE_PYTHON=1)" >&2
AGENTPROM_PURE_PYTHON=1 python3 -m pytest "$@" tests/test_decode.py tests/test_decode_view.py \
  tests/test_decode_workers.py tests/test_fuzz.py tests/test_hostile_input.py tests/test_integration_sdk.py \
  tests/test_overload.py tests/test_receiver_errors.py tests/test_request_bounds.py tests/test_wire.py \
  tests/test_streaming.py tests/test_sampling.py tests/test_frameworks.py tests/test_golden.py tests/test_handles.py \
  tests/test_context.py tests/test_sessions_spans.py tests/test_runs.py \
  --deselect tests/test_context.py::test_a_trace_of_a_million_spans_is_bounded \
  --deselect tests/test_context.py::test_a_million_traces_of_one_span_each_are_bounded  # a minute; bounds, not paths
echo "== the whole suite (the compiled parts)" >&2
export AGENTPROM_REQUIRE_COMPILED=1
exec python3 -m pytest "$@"
