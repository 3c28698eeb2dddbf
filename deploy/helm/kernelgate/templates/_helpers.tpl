{{/* The release's objects are named after it. */}}
{{- define "kernelgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kernelgate.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "kernelgate.labels" -}}
{{ include "kernelgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- range $key, $val := .Values.global.commonLabels }}
{{ $key }}: {{ $val | quote }}
{{- end }}
{{- end -}}

{{- define "kernelgate.serviceAccountName" -}}
{{- .Values.deployment.serviceAccountName | default (include "kernelgate.fullname" .) -}}
{{- end -}}

{{/* The Secret holding the shared token, when there is one. */}}
{{- define "kernelgate.authTokenSecret" -}}
{{- if .Values.authTokenSecret.name -}}
{{- .Values.authTokenSecret.name -}}
{{- else if .Values.authToken -}}
{{- printf "%s-token" (include "kernelgate.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "kernelgate.replicaTokenSecret" -}}
{{- .Values.replication.replicaTokenSecret.name | default (printf "%s-replica" (include "kernelgate.fullname" .)) -}}
{{- end -}}

{{/* Records on a volume: a replica group's shared one, or one gateway's. */}}
{{- define "kernelgate.recordsClaim" -}}
{{- if .Values.replication.enabled -}}
{{- if eq .Values.replication.kernelStore "file" -}}
{{- .Values.replication.persistence.existingClaim | default (printf "%s-records" (include "kernelgate.fullname" .)) -}}
{{- end -}}
{{- else if .Values.persistence.enabled -}}
{{- .Values.persistence.existingClaim | default (printf "%s-records" (include "kernelgate.fullname" .)) -}}
{{- end -}}
{{- end -}}

{{/* kernelgate's log levels, from EG's names too. */}}
{{- define "kernelgate.logLevel" -}}
{{- $l := lower (toString .Values.logLevel) -}}
{{- if or (eq $l "warning") (eq $l "warn") -}}warn
{{- else if or (eq $l "error") (eq $l "critical") (eq $l "fatal") -}}error
{{- else if eq $l "debug" -}}debug
{{- else -}}info
{{- end -}}
{{- end -}}

{{- define "kernelgate.validate" -}}
{{- if and .Values.replication.enabled (not (has .Values.replication.kernelStore (list "file" "kubernetes"))) -}}
{{- fail "replication.kernelStore must be file or kubernetes" -}}
{{- end -}}
{{- if and (gt (int .Values.deployment.replicas) 1) (not .Values.replication.enabled) -}}
{{- fail "deployment.replicas > 1 needs replication.enabled: without it each replica would serve only its own kernels" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) -}}
{{- fail "tls.enabled needs tls.secretName (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if and .Values.auth.oidc.issuer (not .Values.auth.oidc.audience) -}}
{{- fail "auth.oidc.issuer needs auth.oidc.audience" -}}
{{- end -}}
{{- end -}}
