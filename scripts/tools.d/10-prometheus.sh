# Prometheus 2.42, promtool, Alertmanager 0.25 and amtool from Debian (static binaries, unpacked):
#   .tools/root/usr/bin/{prometheus,promtool,prometheus-alertmanager,amtool}
if [ ! -x "$TOOLS/root/usr/bin/promtool" ] || [ ! -x "$TOOLS/root/usr/bin/prometheus-alertmanager" ]; then
  log "prometheus, promtool and alertmanager from Debian packages"
  apt_download prometheus prometheus-alertmanager
  for deb in "$TOOLS"/prometheus*.deb; do dpkg-deb -x "$deb" "$TOOLS/root"; done
  rm -f "$TOOLS"/prometheus*.deb
fi
