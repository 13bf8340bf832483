# Debian's Alertmanager reads its default notification templates from the path compiled into the
# binary, /usr/share/prometheus/alertmanager/, and exits at start-up without them. 10-prometheus.sh
# only unpacks the package into .tools/, so copy the package's two template files to where the
# binary looks, as installing the package would (without its daemon). Needs root, as apt-get does.
AM_TEMPLATES=/usr/share/prometheus/alertmanager
if [ ! -f "$AM_TEMPLATES/default.tmpl" ]; then
  log "Alertmanager templates into $AM_TEMPLATES (the path compiled into Debian's build)"
  mkdir -p "$AM_TEMPLATES"
  cp "$TOOLS/root/usr/share/prometheus/alertmanager/default.tmpl" \
     "$TOOLS/root/usr/share/prometheus/alertmanager/email.tmpl" "$AM_TEMPLATES/"
fi
