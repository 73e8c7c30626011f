{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "flipkd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name of every object. */}}
{{- define "flipkd.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels that select the pods. */}}
{{- define "flipkd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flipkd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Standard labels of every object. */}}
{{- define "flipkd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "flipkd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: server
app.kubernetes.io/part-of: flipkd
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The image: the CUDA build ("<tag>-cuda") when GPUs are requested. */}}
{{- define "flipkd.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.gpu.enabled }}{{ $tag = printf "%s-cuda" $tag }}{{ end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{/* The model cache claim. */}}
{{- define "flipkd.cacheClaim" -}}
{{- .Values.modelCache.persistentVolumeClaim.existingClaim | default (printf "%s-models" (include "flipkd.fullname" .)) }}
{{- end }}

{{/* Writable mounts of the init containers: the model cache and /tmp. */}}
{{- define "flipkd.commonMounts" -}}
- name: models
  mountPath: /var/lib/flipkd
- name: tmp
  mountPath: /tmp
{{- end }}
