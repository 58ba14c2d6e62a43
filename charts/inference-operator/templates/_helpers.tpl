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

{{/* Name of the gateway's Deployment, Service and (by default) ServiceAccount. */}}
{{- define "inference-operator.gatewayName" -}}
{{- printf "%s-gateway" (include "inference-operator.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{- define "inference-operator.gatewaySelectorLabels" -}}
app.kubernetes.io/name: {{ include "inference-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "inference-operator.gatewayLabels" -}}
{{ include "inference-operator.gatewaySelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "inference-operator.chart" . }}
{{- end -}}

{{- define "inference-operator.gatewayServiceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create -}}
{{- default (include "inference-operator.gatewayName" .) .Values.gateway.serviceAccount.name -}}
{{- else -}}
{{- .Values.gateway.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The gateway Service's in-cluster URL (the port only when it is not 80). */}}
{{- define "inference-operator.gatewayURL" -}}
{{- $port := int .Values.gateway.service.port -}}
{{- printf "http://%s.%s.svc" (include "inference-operator.gatewayName" .) .Release.Namespace -}}
{{- if ne $port 80 }}:{{ $port }}{{ end -}}
{{- end -}}

{{/* INFERENCE_OPERATOR_GATEWAY_BASE_URL: config.gatewayBaseURL, else the chart's gateway; empty: operator default. */}}
{{- define "inference-operator.gatewayBaseURL" -}}
{{- if .Values.config.gatewayBaseURL -}}
{{- .Values.config.gatewayBaseURL -}}
{{- else if .Values.gateway.enabled -}}
{{- include "inference-operator.gatewayURL" . -}}
{{- end -}}
{{- end -}}

{{/* The headless Service of the gateway's internal port (counts, metrics): one endpoint per pod. */}}
{{- define "inference-operator.gatewayInternalName" -}}
{{- printf "%s-internal" (include "inference-operator.gatewayName" .) -}}
{{- end -}}

{{/* The Secret holding the bearer token of GET /-/counts (gateway and operator mount it). */}}
{{- define "inference-operator.gatewayCountsTokenName" -}}
{{- printf "%s-counts-token" (include "inference-operator.gatewayName" .) -}}
{{- end -}}

{{/* The ConfigMap of the operator's per-gateway-pod counts ledger (the operator's default name). */}}
{{- define "inference-operator.countsLedgerName" -}}
inference-operator-gateway-counts
{{- end -}}

{{/* INFERENCE_OPERATOR_GATEWAY_COUNTS_SERVICE: namespace/name of the internal Service whose EndpointSlices
list the gateway pods the operator reads. */}}
{{- define "inference-operator.gatewayCountsService" -}}
{{- if and .Values.gateway.enabled .Values.gateway.collectCounts -}}
{{- printf "%s/%s" .Release.Namespace (include "inference-operator.gatewayInternalName" .) -}}
{{- end -}}
{{- end -}}

{{/* Name of the operator's leader-election Lease (and of the Role that grants it). */}}
{{- define "inference-operator.leaseName" -}}
{{- include "inference-operator.fullname" . -}}
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
- apiGroups: ["inference.networking.k8s.io"]
  resources: ["inferencepools"]
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

{{/*
Rules of the gateway's ServiceAccount in every namespace it serves (gateway/watch.py): list+watch only.
No Secrets: app Secrets are granted one by one (gateway.appSecrets.grants, a Role with resourceNames: the
gateway watches each with a metadata.name field selector, which RBAC authorizes by name), unless
gateway.appSecrets.clusterWide.
*/}}
{{- define "inference-operator.gatewayRules" -}}
- apiGroups: ["inference.io"]
  resources: ["inferenceservices"]
  verbs: ["list", "watch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list", "watch"]
{{- if .Values.gateway.appSecrets.clusterWide }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["list", "watch"]
{{- end }}
{{- end -}}

{{/* kopf's resource discovery watches CRDs (observation.resource_observer), and the operator watches the
CRDs of HTTPRoute and InferencePool by name (served.py) to start or stop writing them: read-only, never written. */}}
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
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail (printf "replicaCount=%d: without leader election every replica would write every child; set leaderElection.enabled=true or keep replicaCount=1" (int .Values.replicaCount)) -}}
{{- end -}}
{{- if .Values.gateway.enabled -}}
{{- if and .Values.gateway.autoscaling.enabled (lt (int .Values.gateway.autoscaling.maxReplicas) (int .Values.gateway.autoscaling.minReplicas)) -}}
{{- fail "gateway.autoscaling.maxReplicas is below minReplicas" -}}
{{- end -}}
{{- if le (int .Values.gateway.terminationGracePeriodSeconds) (int (add 5 .Values.gateway.finalReadSeconds)) -}}
{{- fail "gateway.terminationGracePeriodSeconds must exceed gateway.finalReadSeconds (plus the drain) or a stopping gateway is killed before its last counts are read" -}}
{{- end -}}
{{- if and (not .Values.gateway.serviceAccount.create) (not .Values.gateway.serviceAccount.name) -}}
{{- fail "gateway.serviceAccount.create=false needs gateway.serviceAccount.name: the existing ServiceAccount the gateway runs as" -}}
{{- end -}}
{{- if eq (int .Values.gateway.port) (int .Values.gateway.metricsPort) -}}
{{- fail (printf "gateway.port and gateway.metricsPort are both %d: /v1/infers and /metrics need their own ports" (int .Values.gateway.port)) -}}
{{- end -}}
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

{{/* Name of the cloud API server's Deployment, Service and (by default) ServiceAccount. */}}
{{- define "inference-operator.cloudApiName" -}}
{{- printf "%s-cloud-api" (include "inference-operator.fullname" . | trunc 53 | trimSuffix "-") -}}
{{- end -}}

{{- define "inference-operator.cloudApiSelectorLabels" -}}
app.kubernetes.io/name: {{ include "inference-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: cloud-api
{{- end -}}

{{- define "inference-operator.cloudApiLabels" -}}
{{ include "inference-operator.cloudApiSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "inference-operator.chart" . }}
{{- end -}}

{{- define "inference-operator.cloudApiServiceAccountName" -}}
{{- default (include "inference-operator.cloudApiName" .) .Values.cloudApi.serviceAccount.name -}}
{{- end -}}

{{/* The namespace of the access-key Secrets: cloudApi.credentialsNamespace, else the release's. */}}
{{- define "inference-operator.cloudApiCredentialsNamespace" -}}
{{- default .Release.Namespace .Values.cloudApi.credentialsNamespace -}}
{{- end -}}
