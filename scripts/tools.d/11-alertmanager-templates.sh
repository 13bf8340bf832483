# Debian's Alertmanager reads its default notification templates (and its UI) from a directory
# compiled into the binary, /usr/share/prometheus/alertmanager/, and exits at start-up without
# them. Nothing is written outside the checkout, so .tools/alertmanager/ gets a relocated copy of
# the binary instead: the path is a Go string constant, replaced by a relative path of the same
# length ("./" x 11 + "alertmanager"), the way conda relocates a package's build prefix in its
# binaries, and .tools/alertmanager/alertmanager links to the templates 10-prometheus.sh unpacked.
# Run it in .tools/alertmanager/ (the tests do; every other path they give it is absolute).
AM_HOME="$TOOLS/alertmanager"
if [ ! -x "$AM_HOME/prometheus-alertmanager" ]; then
  log "Alertmanager relocated into $AM_HOME (templates from the Debian package)"
  mkdir -p "$AM_HOME"
  ln -sfn ../root/usr/share/prometheus/alertmanager "$AM_HOME/alertmanager"
  python3 - "$TOOLS/root/usr/bin/prometheus-alertmanager" "$AM_HOME/prometheus-alertmanager" <<'PY'
import os
import sys

source, target = sys.argv[1:]
old = b"/usr/share/prometheus/alertmanager"
new = b"./" * 11 + b"alertmanager"
assert len(new) == len(old)
data = open(source, "rb").read()
assert data.count(old) > 0, f"{source}: {old.decode()} not found; is it Debian's build?"
with open(target + ".tmp", "wb") as out:
    out.write(data.replace(old, new))
os.chmod(target + ".tmp", 0o755)
os.replace(target + ".tmp", target)
PY
fi
