{{/*
Names, labels, the rendered agentprom configuration, and the on/off rule for Prometheus Operator
resources. The helpers that the sidecar templates use need only .Values and .Release (and .Chart
when present), so that another chart can call them with (dict "Values" .Values.agentprom "Release" .Release).
*/}}

{{- define "agentprom.name" -}}
{{- default "agentprom" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "agentprom.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "agentprom.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "agentprom.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentprom.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "agentprom.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "agentprom.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end -}}

{{- define "agentprom.image" -}}
{{- $tag := .Values.image.tag -}}
{{- if and (not $tag) (hasKey . "Chart") -}}
{{- $tag = .Chart.AppVersion -}}
{{- end -}}
{{- if not $tag -}}
{{- fail "agentprom: set image.tag (the chart's appVersion is not known in this context)" -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* The agentprom.yaml the chart renders: listen addresses, logging, sessions and the JSONL log,
then .Values.config over them. */}}
{{- define "agentprom.config" -}}
{{- $host := .Values.otlpHost | default (ternary "0.0.0.0" "127.0.0.1" (eq .Values.mode "gateway")) -}}
{{- if contains ":" $host -}}
{{- $host = printf "[%s]" ($host | trimPrefix "[" | trimSuffix "]") -}}
{{- end -}}
{{- $server := dict
      "otlp_grpc" (printf "%s:%d" $host (int .Values.ports.otlpGrpc))
      "otlp_http" (printf "%s:%d" $host (int .Values.ports.otlpHttp))
      "metrics" (printf "0.0.0.0:%d" (int .Values.ports.metrics)) -}}
{{- $rendered := dict "server" $server "log" (dict "level" .Values.log.level "format" .Values.log.format) -}}
{{- $sessions := .Values.sessions -}}
{{- $_ := set $rendered "sessions" (dict "enabled" $sessions.enabled) -}}
{{- if $sessions.jsonl.enabled -}}
{{- if not $sessions.enabled -}}
{{- fail "agentprom: sessions.jsonl.enabled needs sessions.enabled (the log holds the sessions' calls)" -}}
{{- end -}}
{{- $_ := set $rendered "jsonl" (dict
      "enabled" true
      "directory" (printf "/var/lib/agentprom/%s" $sessions.jsonl.directory)
      "rotate_bytes" (int64 $sessions.jsonl.rotateBytes)
      "keep_files" (int $sessions.jsonl.keepFiles)) -}}
{{- end -}}
{{- $storage := include "agentprom.storage.config" . | fromYaml -}}
{{- if $storage -}}
{{- $_ := set $rendered "storage" $storage -}}
{{- end -}}
{{- toYaml (mustMergeOverwrite $rendered (deepCopy .Values.config)) -}}
{{- end -}}

{{/*
Store credentials from a Secret (storage.existingSecret, storage.secretKeys): the store addresses go
to the environment variables agentprom reads them from (AGENTPROM_POSTGRES_DSN, AGENTPROM_REDIS_URL),
the passwords to AGENTPROM_POSTGRES_PASSWORD / AGENTPROM_REDIS_PASSWORD, which the rendered
configuration names as the stores' password_env. Nothing secret is rendered into the ConfigMap.
"agentprom.storage.wired" lists (values key, variable) of the keys given.
*/}}
{{- define "agentprom.storage.wired" -}}
{{- $keys := (.Values.storage | default dict).secretKeys | default dict -}}
{{- $wired := list -}}
{{- range list (list "postgresDsn" "AGENTPROM_POSTGRES_DSN") (list "postgresPassword" "AGENTPROM_POSTGRES_PASSWORD")
               (list "redisUrl" "AGENTPROM_REDIS_URL") (list "redisPassword" "AGENTPROM_REDIS_PASSWORD") -}}
{{- if get $keys (index . 0) -}}
{{- $wired = append $wired . -}}
{{- end -}}
{{- end -}}
{{- toJson $wired -}}
{{- end -}}

{{/* The container's environment variables from the Secret. */}}
{{- define "agentprom.storage.env" -}}
{{- $storage := .Values.storage | default dict -}}
{{- $env := list -}}
{{- range include "agentprom.storage.wired" . | fromJsonArray -}}
{{- $env = append $env (dict "name" (index . 1) "valueFrom" (dict "secretKeyRef" (dict "name" $storage.existingSecret "key" (get $storage.secretKeys (index . 0))))) -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* The storage section the chart adds to agentprom.yaml (the password_env of each password from the
Secret), after checking the storage values: the ConfigMap renders in both modes, so the checks run in both. */}}
{{- define "agentprom.storage.config" -}}
{{- $storage := .Values.storage | default dict -}}
{{- $keys := $storage.secretKeys | default dict -}}
{{- $wired := include "agentprom.storage.wired" . | fromJsonArray -}}
{{- if and $wired (not $storage.existingSecret) -}}
{{- fail "agentprom: storage.secretKeys names keys of a Secret, but storage.existingSecret (the Secret's name) is empty" -}}
{{- end -}}
{{- if and $storage.existingSecret (not $wired) -}}
{{- fail (printf "agentprom: storage.existingSecret is %s, but no storage.secretKeys entry (postgresDsn, postgresPassword, redisUrl, redisPassword) names a key of it" $storage.existingSecret) -}}
{{- end -}}
{{- $configured := (.Values.config | default dict).storage | default dict -}}
{{- if and (get $keys "postgresPassword") (not (get $keys "postgresDsn")) (not (($configured.postgres | default dict).dsn)) -}}
{{- fail "agentprom: storage.secretKeys.postgresPassword is set, but PostgreSQL has no address: set storage.secretKeys.postgresDsn or config.storage.postgres.dsn" -}}
{{- end -}}
{{- if and (get $keys "redisPassword") (not (get $keys "redisUrl")) (not (($configured.redis | default dict).url)) -}}
{{- fail "agentprom: storage.secretKeys.redisPassword is set, but Redis has no address: set storage.secretKeys.redisUrl or config.storage.redis.url" -}}
{{- end -}}
{{- $rendered := dict -}}
{{- if get $keys "postgresPassword" -}}
{{- $_ := set $rendered "postgres" (dict "password_env" "AGENTPROM_POSTGRES_PASSWORD") -}}
{{- end -}}
{{- if get $keys "redisPassword" -}}
{{- $_ := set $rendered "redis" (dict "password_env" "AGENTPROM_REDIS_PASSWORD") -}}
{{- end -}}
{{- if $rendered -}}
{{- toYaml $rendered -}}
{{- end -}}
{{- end -}}

{{- define "agentprom.configChecksum" -}}
{{- include "agentprom.config" . | sha256sum -}}
{{- end -}}

{{/*
Whether to render a Prometheus Operator resource: (list $ "monitoring.coreos.com/v1/PodMonitor" .Values.x.enabled).
"auto" renders it when the cluster serves the API.
*/}}
{{- define "agentprom.operatorEnabled" -}}
{{- $root := index . 0 -}}
{{- $api := index . 1 -}}
{{- $enabled := index . 2 -}}
{{- if eq (toString $enabled) "auto" -}}
{{- if $root.Capabilities.APIVersions.Has $api }}true{{ end -}}
{{- else if $enabled -}}
true
{{- end -}}
{{- end -}}

{{/*
One NOTES line on a Prometheus Operator resource: (list $ "PodMonitor" "monitoring.podMonitor.enabled" .Values.x.enabled).
*/}}
{{- define "agentprom.operatorNote" -}}
{{- $root := index . 0 -}}
{{- $kind := index . 1 -}}
{{- $key := index . 2 -}}
{{- $enabled := index . 3 -}}
{{- $api := printf "monitoring.coreos.com/v1/%s" $kind -}}
{{- if include "agentprom.operatorEnabled" (list $root $api $enabled) -}}
{{ $kind }}: rendered ({{ $key }}={{ $enabled }})
{{- else if eq (toString $enabled) "auto" -}}
{{ $kind }}: not rendered, the cluster does not serve {{ $api }} ({{ $key }}=auto; true forces it)
{{- else -}}
{{ $kind }}: not rendered ({{ $key }}={{ $enabled }})
{{- end -}}
{{- end -}}

{{- define "agentprom.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create -}}
{{- default (include "agentprom.fullname" .) .Values.gateway.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.gateway.serviceAccount.name -}}
{{- end -}}
{{- end -}}
