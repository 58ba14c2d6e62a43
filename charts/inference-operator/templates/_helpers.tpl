{{/* Names, labels, RBAC rules and fail-fast validation of the inference-operator chart. */}}

{{- define "inference-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or the release name when it already contains the chart name (63 chars max). */}}
{{- define "inference-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "inference-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: immutable in a Deployment, so nothing that changes with a version. */}}
{{- define "inference-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inference-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "inference-operator.labels" -}}
{{ include "inference-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "inference-operator.chart" . }}
{{- end -}}

{{- define "inference-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "inference-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, or repository[:tag]@digest; the tag defaults to the chart's appVersion. */}}
{{- define "inference-operator.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Namespace of the flavor ConfigMap: the operator's own unless set. */}}
{{- define "inference-operator.flavorNamespace" -}}
{{- .Values.flavorConfigMap.namespace | default .Release.Namespace -}}
{{- end -}}

{{/*
Rules the operator needs in every namespace it watches: a ClusterRole's rules when it watches all of
them, a Role's rules in each watched namespace otherwise. Derived from kube.py (server-side apply =
PATCH, which creates too; DELETE of children; POST of events) and handlers.py (kopf list+watch of the
service, its children, pods and ConfigMaps). The spec of an InferenceService is never written.
*/}}
{{- define "inference-operator.namespacedRules" -}}
- apiGroups: ["inference.io"]
  resources: ["inferenceservices"]
  verbs: ["list", "watch"]
- apiGroups: ["inference.io"]
  resources: ["inferenceservices/status"]
  verbs: ["patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* kopf's resource discovery watches CRDs (observation.resource_observer): read-only, never written. */}}
{{- define "inference-operator.crdRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end -}}

{{/*
Validation that fails the render with a message instead of installing something that cannot work.
The schema already rejects unknown keys, wrong types and namespace globs.
*/}}
{{- define "inference-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.peering.enabled) -}}
{{- fail (printf "replicaCount=%d: the operator runs standalone, so every replica would write every child; keep replicaCount=1 (peering.enabled is the prerequisite of more)" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) -}}
{{- fail "serviceAccount.create=false needs serviceAccount.name: the existing ServiceAccount the operator runs as" -}}
{{- end -}}
{{- if and .Values.prometheus.servicemonitor.enabled (not .Values.prometheus.enabled) -}}
{{- fail "prometheus.servicemonitor.enabled=true needs prometheus.enabled=true: there is no metrics endpoint to scrape" -}}
{{- end -}}
{{- if and .Values.prometheus.enabled (eq (int .Values.healthPort) (int .Values.prometheus.port)) -}}
{{- fail (printf "healthPort and prometheus.port are both %d: the health endpoint and /metrics need their own ports" (int .Values.healthPort)) -}}
{{- end -}}
{{- $flavorNamespace := include "inference-operator.flavorNamespace" . -}}

{{- end -}}
