{{- define "sorcha-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sorcha-operator.fullname" -}}
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

{{- define "sorcha-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sorcha-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sorcha-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sorcha-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sorcha
{{- end }}

{{- define "sorcha-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sorcha-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sorcha-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Namespace-scoped mode without namespaces would watch nothing. */}}
{{- define "sorcha-operator.watchNamespaces" -}}
{{- if eq .Values.rbac.scope "namespaced" }}
{{- if not .Values.rbac.watchNamespaces }}
{{- fail "rbac.watchNamespaces: list at least one namespace when rbac.scope is namespaced" }}
{{- end }}
{{- join "," .Values.rbac.watchNamespaces }}
{{- end }}
{{- end }}

{{/*
What the operator reads and writes in the namespaces it manages, derived from
operator/src/controller (operator/tests/helm_chart.rs checks every kind the
controller touches is here). It also holds get/patch on sorchapeers/status
because Kubernetes only lets it grant the peers' Role what it holds itself.
*/}}
{{- define "sorcha-operator.namespacedRules" -}}
- apiGroups: ["sorcha.dev"]
  resources: ["sorchanetworks"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["sorcha.dev"]
  resources: ["sorchapeers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["sorcha.dev"]
  resources: ["sorchanetworks/status", "sorchapeers/status"]
  verbs: ["get", "patch"]
# Owner references with blockOwnerDeletion need update on the owner's finalizers.
- apiGroups: ["sorcha.dev"]
  resources: ["sorchanetworks/finalizers", "sorchapeers/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["services", "configmaps", "secrets"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors", "podmonitors"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
