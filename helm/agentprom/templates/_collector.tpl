{{/*
The OpenTelemetry Collector tier in front of the gateway replicas (collectorTier.enabled, gateway mode
only; docs/topologies.md). The collector receives OTLP and sends every span of a trace (and every
log record of it) to one agentprom replica with the contrib loadbalancing exporter
(routing_key: traceID), and every metric stream of one resource to one replica (routing_key:
resource). It finds the replicas through the headless Service "agentprom.headlessName".
*/}}

{{- define "agentprom.headlessName" -}}
{{- printf "%s-headless" (include "agentprom.fullname" . | trunc 54 | trimSuffix "-") -}}
{{- end -}}

{{- define "agentprom.collector.fullname" -}}
{{- printf "%s-collector" (include "agentprom.fullname" . | trunc 50 | trimSuffix "-") -}}
{{- end -}}

{{/* Its own name label, so that the gateway's selectors (Deployment, Service, PDB, ServiceMonitor) never match the collector. */}}
{{- define "agentprom.collector.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-collector" (include "agentprom.name" . | trunc 50 | trimSuffix "-") }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "agentprom.collector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "agentprom.collector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.collectorTier.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: collector
app.kubernetes.io/part-of: {{ include "agentprom.fullname" . }}
{{- end -}}

{{- define "agentprom.collector.check" -}}
{{- if ne .Values.mode "gateway" -}}
{{- fail "agentprom: collectorTier.enabled needs mode=gateway: the collector tier spreads traces over the gateway replicas, and in sidecar mode there are none (each agent pod has its own agentprom; set mode=gateway or collectorTier.enabled=false)" -}}
{{- end -}}
{{- end -}}

{{/* The collector's configuration, then collectorTier.config merged over it. */}}
{{- define "agentprom.collector.config" -}}
{{- $lb := .Values.collectorTier -}}
{{- $headless := include "agentprom.headlessName" . -}}
{{- $resolver := dict -}}
{{- if eq $lb.resolver "k8s" -}}
{{- $resolver = dict "k8s" (dict "service" (printf "%s.%s" $headless .Release.Namespace) "ports" (list (int .Values.ports.otlpGrpc))) -}}
{{- else -}}
{{- $resolver = dict "dns" (dict
      "hostname" (printf "%s.%s.svc.%s" $headless .Release.Namespace $lb.clusterDomain)
      "port" (printf "%d" (int .Values.ports.otlpGrpc))
      "interval" $lb.dns.interval
      "timeout" $lb.dns.timeout) -}}
{{- end -}}
{{- $listen := "${env:MY_POD_IP}" -}}
{{- $config := dict
  "extensions" (dict "health_check" (dict "endpoint" (printf "%s:13133" $listen)))
  "receivers" (dict "otlp" (dict "protocols" (dict
      "grpc" (dict "endpoint" (printf "%s:4317" $listen))
      "http" (dict "endpoint" (printf "%s:4318" $listen)))))
  "processors" (dict
      "memory_limiter" (dict "check_interval" "1s" "limit_percentage" 80 "spike_limit_percentage" 25)
      "batch" dict)
  "exporters" (dict
      "loadbalancing" (dict
          "routing_key" "traceID"
          "protocol" (dict "otlp" (dict "timeout" "10s" "tls" (dict "insecure" true)))
          "resolver" $resolver)
      "loadbalancing/metrics" (dict
          "routing_key" "resource"
          "protocol" (dict "otlp" (dict "timeout" "10s" "tls" (dict "insecure" true)))
          "resolver" (deepCopy $resolver)))
  "service" (dict
      "extensions" (list "health_check")
      "telemetry" (dict "metrics" (dict "readers" (list (dict "pull" (dict "exporter" (dict "prometheus" (dict "host" $listen "port" 8888)))))))
      "pipelines" (dict
          "traces" (dict "receivers" (list "otlp") "processors" (list "memory_limiter" "batch") "exporters" (list "loadbalancing"))
          "logs" (dict "receivers" (list "otlp") "processors" (list "memory_limiter" "batch") "exporters" (list "loadbalancing"))
          "metrics" (dict "receivers" (list "otlp") "processors" (list "memory_limiter" "batch") "exporters" (list "loadbalancing/metrics")))) -}}
{{- toYaml (mustMergeOverwrite $config (deepCopy $lb.config)) -}}
{{- end -}}
