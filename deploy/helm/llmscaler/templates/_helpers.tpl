{{- define "llmscaler.labels" -}}
app.kubernetes.io/name: llmscaler
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

{{- define "llmscaler.selector" -}}
app.kubernetes.io/name: llmscaler
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end }}

{{- define "llmscaler.fullname" -}}
{{ .Release.Name }}-llmscaler
{{- end }}
