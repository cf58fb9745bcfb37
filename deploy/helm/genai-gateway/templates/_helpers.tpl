{{/* Names: <release>-genai-gateway unless the release name already says it. */}}
{{- define "gw.fullname" -}}
{{- if contains "genai-gateway" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-genai-gateway" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "gw.labels" -}}
app.kubernetes.io/name: genai-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "gw.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "gw.secretName" -}}
{{- if .Values.secret.create -}}{{ include "gw.fullname" . }}{{- else -}}{{ required "secret.existingSecret is required when secret.create is false" .Values.secret.existingSecret }}{{- end -}}
{{- end -}}

{{/* Where a forwarding sidecar sends: the tier's Service, or forwardEndpoint. */}}
{{- define "gw.forwardEndpoint" -}}
{{- if .Values.sidecar.forwardEndpoint -}}
{{ .Values.sidecar.forwardEndpoint }}
{{- else if .Values.tier.enabled -}}
http://{{ include "gw.fullname" . }}-tier.{{ .Release.Namespace }}.svc:4318
{{- else -}}
{{ fail "sidecar.mode forward needs tier.enabled or sidecar.forwardEndpoint" }}
{{- end -}}
{{- end -}}

{{/* Environment from the Secret. Arguments: dict "root" $ "db" bool "exporters" bool. Optional keys, so
an empty value simply leaves that feature off. */}}
{{- define "gw.secretEnv" -}}
{{- $s := include "gw.secretName" .root -}}
{{- $vars := list -}}
{{- if .db -}}{{- $vars = append $vars (list "DATABASE_URL" "database-url") -}}{{- end -}}
{{- if .exporters -}}
{{- $vars = concat $vars (list (list "LANGFUSE_HOST" "langfuse-host") (list "LANGFUSE_PUBLIC_KEY" "langfuse-public-key") (list "LANGFUSE_SECRET_KEY" "langfuse-secret-key") (list "SIGNOZ_ENDPOINT" "signoz-endpoint") (list "SIGNOZ_INGESTION_KEY" "signoz-ingestion-key")) -}}
{{- end -}}
{{- $vars = append $vars (list "GENAI_GW_REDACTION_HMAC_KEY" "redaction-hmac-key") -}}
{{- range $vars }}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $s }}
      key: {{ index . 1 }}
      optional: true
{{- end }}
{{- end -}}

{{/* Whether this role's receivers require a token. Arguments: dict "root" $ "role". */}}
{{- define "gw.authOn" -}}
{{- $v := .root.Values -}}
{{- if and $v.auth.enabled (or (eq .role "tier") $v.auth.sidecar) -}}true{{- end -}}
{{- end -}}

{{/* Whether this role is a sidecar forwarding with a token. Arguments: dict "root" $ "role". */}}
{{- define "gw.forwardToken" -}}
{{- $v := .root.Values -}}
{{- if and $v.auth.enabled (eq .role "sidecar") (eq $v.sidecar.mode "forward") -}}true{{- end -}}
{{- end -}}

{{/* The gateway container. Arguments: dict "root" $ "role" "sidecar"|"tier". */}}
{{- define "gw.container" -}}
{{- $v := .root.Values -}}
{{- $tier := eq .role "tier" -}}
{{- $forward := and (not $tier) (eq $v.sidecar.mode "forward") -}}
- name: genai-gateway
  image: {{ include "gw.image" .root }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: ["--config", "/etc/genai-gateway/gateway.yaml"]
  env:
    - name: GENAI_GW_SPOOL_DIR
      value: /var/lib/genai-gateway/spool
    {{- include "gw.secretEnv" (dict "root" .root "db" (not $forward) "exporters" (not $forward)) | trim | nindent 4 }}
  ports:
    {{- if $tier }}
    - {name: otlp-grpc, containerPort: 4317, protocol: TCP}
    - {name: otlp-http, containerPort: 4318, protocol: TCP}
    {{- end }}
    - {name: admin, containerPort: 8888, protocol: TCP}
  livenessProbe:
    httpGet: {path: /healthz, port: admin}
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
  {{- /* a sidecar's readiness is its pod's: a full spool must not take the app out of its Service (the
    app's exporter gets 429/503 and retries); a tier replica leaves rotation while its spool is full */}}
  readinessProbe:
    httpGet: {path: {{ if $tier }}/readyz{{ else }}"/readyz?exclude=spool"{{ end }}, port: admin}
    periodSeconds: 5
    timeoutSeconds: 2
    failureThreshold: 2
  {{- /* the admin port opens once the disk spool is recovered (every segment read and checked): a tier
    replica back with a full spool needs minutes on a cold volume, not the sidecar's seconds */}}
  startupProbe:
    httpGet: {path: /healthz, port: admin}
    periodSeconds: 1
    failureThreshold: {{ ternary $v.tier.startupSeconds $v.sidecar.startupSeconds $tier }}
  resources:
    {{- toYaml (ternary $v.tier.resources $v.sidecar.resources $tier) | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - {name: gw-config, mountPath: /etc/genai-gateway, readOnly: true}
    - {name: gw-spool, mountPath: /var/lib/genai-gateway}
    - {name: gw-tmp, mountPath: /tmp}
    {{- if include "gw.authOn" . }}
    - {name: gw-auth, mountPath: /etc/genai-gateway-auth, readOnly: true}
    {{- end }}
    {{- if include "gw.forwardToken" . }}
    - {name: gw-forward-token, mountPath: /etc/genai-gateway-forward, readOnly: true}
    {{- end }}
{{- end -}}

{{/* The gateway's volumes but the spool. */}}
{{- define "gw.volumes" -}}
- name: gw-config
  configMap:
    name: {{ include "gw.fullname" .root }}-{{ .role }}
- name: gw-tmp
  emptyDir: {medium: Memory, sizeLimit: 16Mi}
{{- if include "gw.authOn" . }}
- name: gw-auth
  secret:
    secretName: {{ include "gw.secretName" .root }}
    items: [{key: auth-tokens, path: tokens}]
    defaultMode: 0440
{{- end }}
{{- if include "gw.forwardToken" . }}
- name: gw-forward-token
  secret:
    secretName: {{ include "gw.secretName" .root }}
    items: [{key: forward-token, path: token}]
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "gw.metricsAnnotations" -}}
{{- if .Values.metrics.annotations -}}
prometheus.io/scrape: "true"
prometheus.io/port: "8888"
prometheus.io/path: /metrics
{{- end -}}
{{- end -}}
