{{/*
The agentprom container, its volumes and the pod annotations it wants. The gateway Deployment uses
them, and so can your agent's pod template in sidecar mode:

  containers:   # or initContainers, with sidecar.native=true
    {{- include "agentprom.sidecar.container" $ap | nindent 4 }}
  volumes:
    {{- include "agentprom.sidecar.volumes" $ap | nindent 4 }}

where $ap is this chart's root context, or, from a parent chart that depends on agentprom:
  {{- $ap := dict "Values" .Values.agentprom "Release" .Release }}
*/}}

{{- define "agentprom.sidecar.container" -}}
{{- $gateway := eq .Values.mode "gateway" -}}
- name: agentprom
  image: {{ include "agentprom.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if and (not $gateway) .Values.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  args: ["serve", "--config", "/etc/agentprom/agentprom.yaml"]
  {{- $env := concat (include "agentprom.storage.env" . | fromYamlArray) (.Values.extraEnv | default list) }}
  {{- with $env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    {{- if $gateway }}
    - name: ap-otlp-grpc
      containerPort: {{ .Values.ports.otlpGrpc }}
      protocol: TCP
    - name: ap-otlp-http
      containerPort: {{ .Values.ports.otlpHttp }}
      protocol: TCP
    {{- end }}
    - name: ap-metrics
      containerPort: {{ .Values.ports.metrics }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /-/ready
      port: ap-metrics
    {{- toYaml .Values.probes.startup | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /-/healthy
      port: ap-metrics
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /-/ready
      port: ap-metrics
    {{- toYaml .Values.probes.readiness | nindent 4 }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: agentprom-config
      mountPath: /etc/agentprom
      readOnly: true
    - name: agentprom-data
      mountPath: /var/lib/agentprom
    - name: agentprom-tmp
      mountPath: /tmp
{{- end -}}

{{- define "agentprom.sidecar.volumes" -}}
- name: agentprom-config
  configMap:
    name: {{ include "agentprom.fullname" . }}
- name: agentprom-data
  {{- if .Values.data.volume }}
  {{- toYaml .Values.data.volume | nindent 2 }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .Values.data.sizeLimit }}
  {{- end }}
- name: agentprom-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{/* Pod annotations: a config checksum so that a config change rolls the pods, and optional scrape hints. */}}
{{- define "agentprom.sidecar.podAnnotations" -}}
checksum/agentprom-config: {{ include "agentprom.configChecksum" . }}
{{- if .Values.sidecar.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.ports.metrics | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}
