{{/*
Names, labels and shared snippets. Every define is prefixed `canarywatch.` so a parent
chart's helpers never collide with these.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "canarywatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every object name: fullnameOverride, or `<release>` when the release name
already contains the chart name, else `<release>-<chart>`. Truncated so that the longest
suffix the chart adds (`-operator-leader-election`, 25 characters) still fits 63.
*/}}
{{- define "canarywatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 38 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "canarywatch.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 38 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 38 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* `name-version` for the helm.sh/chart label. */}}
{{- define "canarywatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: stable across upgrades (selectors are immutable). */}}
{{- define "canarywatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "canarywatch.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Standard labels of one component; call with (dict "context" $ "component" "operator").
*/}}
{{- define "canarywatch.labels" -}}
{{ include "canarywatch.selectorLabels" . }}
helm.sh/chart: {{ include "canarywatch.chart" .context }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: canarywatch
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
{{- with .context.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.annotations of every object, when commonAnnotations has any. */}}
{{- define "canarywatch.annotations" -}}
{{- with .Values.commonAnnotations -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* The operator's object names. */}}
{{- define "canarywatch.operator.fullname" -}}
{{- printf "%s-operator" (include "canarywatch.fullname" .) -}}
{{- end -}}

{{- define "canarywatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "canarywatch.operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: name the existing ServiceAccount to use when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "canarywatch.leaseName" -}}
{{- default (include "canarywatch.operator.fullname" .) .Values.operator.leaderElection.leaseName -}}
{{- end -}}

{{/* `registry/repository:tag[@digest]`; the tag defaults to the chart's appVersion. */}}
{{- define "canarywatch.image" -}}
{{- $image := .Values.image -}}
{{- $reference := printf "%s/%s:%s" (include "canarywatch.imageRegistry" .) $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- if $image.digest -}}
{{- $reference = printf "%s@%s" $reference $image.digest -}}
{{- end -}}
{{- $reference -}}
{{- end -}}

{{/*
The namespaces the operator handles, as a list (JSON, for fromJsonArray): none for a
cluster-wide install (every namespace), else watchNamespaces or the release namespace.
*/}}
{{- define "canarywatch.watchNamespaces" -}}
{{- if .Values.rbac.clusterWide -}}
{{- if .Values.operator.watchNamespaces -}}
{{- fail "operator.watchNamespaces: leave it empty with rbac.clusterWide=true (the operator then handles every namespace), or set rbac.clusterWide=false to handle only these" -}}
{{- end -}}
{{- list | toJson -}}
{{- else -}}
{{- default (list .Release.Namespace) .Values.operator.watchNamespaces | uniq | toJson -}}
{{- end -}}
{{- end -}}

{{/* The PagerDuty routing-key Secret's name, or "" when none is configured. */}}
{{- define "canarywatch.pagerduty.secretName" -}}
{{- if and .Values.pagerduty.existingSecret .Values.pagerduty.routingKey -}}
{{- fail "pagerduty: set either existingSecret (a Secret you manage) or routingKey (the chart creates the Secret), not both" -}}
{{- end -}}
{{- if .Values.pagerduty.existingSecret -}}
{{- .Values.pagerduty.existingSecret -}}
{{- else if .Values.pagerduty.routingKey -}}
{{- printf "%s-pagerduty" (include "canarywatch.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Names of the demo objects. */}}
{{- define "canarywatch.demo.relayName" -}}
{{- printf "%s-demo-relay" (include "canarywatch.fullname" .) -}}
{{- end -}}
{{- define "canarywatch.demo.receiverName" -}}
{{- printf "%s-demo-pd-receiver" (include "canarywatch.fullname" .) -}}
{{- end -}}
{{- define "canarywatch.demo.integrationName" -}}
{{- printf "%s-demo-relay" (include "canarywatch.fullname" .) -}}
{{- end -}}

{{/*
The operator's API permissions: exactly the calls its code makes. These lists are
operator/canarywatch/controller/permissions.py written as YAML (NAMESPACE_RULES,
KILL_SWITCH_RULES, LEADER_ELECTION_RULES); tests/chart/test_chart.py fails when the two
grant different (group, resource, verb)s. The reasons are commented there.
*/}}
{{- define "canarywatch.operator.namespaceRules" -}}
- apiGroups: ["canarywatch.io"]
  resources: ["cameraintegrations"]
  verbs: ["get", "list", "watch", "patch"]
# get: the probe a LeakIncident names, whose keyring verifies its evidence.
- apiGroups: ["canarywatch.io"]
  resources: ["canaryprobes"]
  verbs: ["get", "list", "watch", "patch"]
# create: held only so the operator may grant it to the viewers' Role (RBAC escalation check).
# delete: finished incidents beyond an integration's spec.incidentHistoryLimit.
- apiGroups: ["canarywatch.io"]
  resources: ["leakincidents"]
  verbs: ["list", "watch", "patch", "create", "delete"]
- apiGroups: ["canarywatch.io"]
  resources: ["cameraintegrations/status", "canaryprobes/status", "leakincidents/status"]
  verbs: ["patch"]
# Keyring Secrets: created once per probe, an item added/removed with a tenant (patch).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
# The agents' objects are server-side applied (PATCH); an apply that creates the object
# is also authorized as `create` by the API server, hence create with every patch. A new
# probe's Service, Deployments and budget are created (POST), and read (get) before
# their first apply, to hand what the create set over to it.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["patch", "create"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "patch", "create"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["patch", "create"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch", "delete", "create"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* Kill-switch actions (scale, networkPolicy, patch of ConfigMaps), + rbac.extraRules. */}}
{{- define "canarywatch.operator.killSwitchRules" -}}
- apiGroups: ["apps"]
  resources: ["deployments/scale", "statefulsets/scale"]
  verbs: ["get", "patch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "patch"]
{{- with .Values.rbac.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The operator's container environment (settings.py reads each variable). */}}
{{- define "canarywatch.operator.env" -}}
{{- $namespaces := include "canarywatch.watchNamespaces" . | fromJsonArray -}}
# "*": every namespace (rbac.clusterWide); else exactly those the Roles are in.
- name: CANARYWATCH_NAMESPACES
  value: {{ if .Values.rbac.clusterWide }}"*"{{ else }}{{ $namespaces | join "," | quote }}{{ end }}
- name: CANARYWATCH_OPERATOR_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: CANARYWATCH_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: CANARYWATCH_AGENT_IMAGE
  value: {{ include "canarywatch.image" . | quote }}
- name: CANARYWATCH_AGENT_IMAGE_PULL_POLICY
  value: {{ .Values.image.pullPolicy | quote }}
{{ include "canarywatch.agents.env" . }}
- name: CANARYWATCH_LISTEN_HOST
  value: "0.0.0.0"
- name: CANARYWATCH_METRICS_PORT
  value: {{ .Values.operator.ports.metrics | quote }}
- name: CANARYWATCH_LIVENESS_PORT
  value: {{ .Values.operator.ports.health | quote }}
- name: CANARYWATCH_LEADER_ELECTION
  value: {{ .Values.operator.leaderElection.enabled | quote }}
- name: CANARYWATCH_LEASE_NAME
  value: {{ include "canarywatch.leaseName" . | quote }}
- name: CANARYWATCH_LEASE_DURATION_SECONDS
  value: {{ .Values.operator.leaderElection.leaseDurationSeconds | quote }}
- name: CANARYWATCH_LEASE_RENEW_DEADLINE_SECONDS
  value: {{ .Values.operator.leaderElection.renewDeadlineSeconds | quote }}
- name: CANARYWATCH_LEASE_RETRY_SECONDS
  value: {{ .Values.operator.leaderElection.retryPeriodSeconds | quote }}
- name: CANARYWATCH_STATUS_INTERVAL_SECONDS
  value: {{ .Values.operator.statusIntervalSeconds | quote }}
- name: CANARYWATCH_RESOLVE_CHECK_SECONDS
  value: {{ .Values.operator.resolveCheckSeconds | quote }}
# Where kill-switch actions may act besides each integration's own namespace.
- name: CANARYWATCH_KILL_SWITCH_NAMESPACES
  value: {{ .Values.rbac.killSwitchNamespaces | join "," | quote }}
- name: CANARYWATCH_KILL_CAP_MAX_KILLS
  value: {{ .Values.operator.killCap.maxKills | quote }}
- name: CANARYWATCH_KILL_CAP_WINDOW_SECONDS
  value: {{ .Values.operator.killCap.windowSeconds | quote }}
- name: CANARYWATCH_API_CONCURRENCY
  value: {{ .Values.operator.apiConcurrency | quote }}
- name: CANARYWATCH_LOG_LEVEL
  value: {{ .Values.operator.logLevel | quote }}
- name: CANARYWATCH_REPORT_UNWATCHED
  value: {{ and .Values.rbac.create .Values.rbac.reportUnwatched (not .Values.rbac.clusterWide) | quote }}
{{- with .Values.pagerduty.eventsUrl }}
- name: CANARYWATCH_PAGERDUTY_EVENTS_URL
  value: {{ . | quote }}
{{- end }}
- name: CANARYWATCH_PAGERDUTY_TIMEOUT_SECONDS
  value: {{ .Values.pagerduty.timeoutSeconds | quote }}
- name: CANARYWATCH_PAGERDUTY_MAX_ATTEMPTS
  value: {{ .Values.pagerduty.maxAttempts | quote }}
- name: CANARYWATCH_PAGERDUTY_RETRY_SECONDS
  value: {{ .Values.pagerduty.retrySeconds | quote }}
# Python writes nothing outside /tmp (read-only root filesystem).
- name: HOME
  value: /tmp
{{- include "canarywatch.proxy.env" . }}
{{- with .Values.operator.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
