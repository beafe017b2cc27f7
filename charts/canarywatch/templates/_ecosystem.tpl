{{/*
Conventions shared with the charts people copy (bitnami): global.imageRegistry,
global.imagePullSecrets, and the agent pods' install-wide options.
*/}}

{{/*
Names of the image pull Secrets: global.imagePullSecrets then imagePullSecrets, each
entry a name or {name: ...}, duplicates dropped. As JSON (for fromJsonArray).
*/}}
{{- define "canarywatch.imagePullSecretNames" -}}
{{- $names := list -}}
{{- range (concat (default list .Values.global.imagePullSecrets) .Values.imagePullSecrets) -}}
{{- $name := . -}}
{{- if kindIs "map" . }}{{ $name = .name }}{{ end -}}
{{- if not (has $name $names) -}}
{{- $names = append $names $name -}}
{{- end -}}
{{- end -}}
{{- $names | toJson -}}
{{- end -}}

{{/* `imagePullSecrets:` of a pod spec (nothing when there are none). */}}
{{- define "canarywatch.imagePullSecrets" -}}
{{- $names := include "canarywatch.imagePullSecretNames" . | fromJsonArray -}}
{{- if $names }}
imagePullSecrets:
{{- range $names }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* The image's registry: global.imageRegistry wins over image.registry. */}}
{{- define "canarywatch.imageRegistry" -}}
{{- default .Values.image.registry .Values.global.imageRegistry -}}
{{- end -}}

{{/*
The agents' options, as the operator reads them (controller/settings.py). The pull
Secrets are the operator's own: the agents run the same image, in the probes'
namespaces, where Secrets of those names must exist.
*/}}
{{- define "canarywatch.agents.env" -}}
{{- $agents := .Values.agents -}}
- name: CANARYWATCH_AGENT_IMAGE_PULL_SECRETS
  value: {{ include "canarywatch.imagePullSecretNames" . | fromJsonArray | join "," | quote }}
- name: CANARYWATCH_AGENT_PRIORITY_CLASS_NAME
  value: {{ $agents.priorityClassName | quote }}
- name: CANARYWATCH_AGENT_POD_LABELS
  value: {{ $agents.podLabels | toJson | quote }}
- name: CANARYWATCH_AGENT_POD_ANNOTATIONS
  value: {{ $agents.podAnnotations | toJson | quote }}
- name: CANARYWATCH_AGENT_MAX_UNAVAILABLE
  value: {{ ternary ($agents.podDisruptionBudget.maxUnavailable | toString) "off" $agents.podDisruptionBudget.enabled | quote }}
{{- end -}}

{{/* The operator's proxy environment (proxy.*), honoured by outbound requests only. */}}
{{- define "canarywatch.proxy.env" -}}
{{- with .Values.proxy -}}
{{- if or .httpsProxy .httpProxy }}
{{- with .httpsProxy }}
- name: HTTPS_PROXY
  value: {{ . | quote }}
{{- end }}
{{- with .httpProxy }}
- name: HTTP_PROXY
  value: {{ . | quote }}
{{- end }}
# Kill-switch webhooks to cluster Services stay inside the cluster.
- name: NO_PROXY
  value: {{ join "," (compact (list "localhost" "127.0.0.1" ".svc" ".cluster.local" .noProxy)) | quote }}
{{- end }}
{{- end }}
{{- end -}}
