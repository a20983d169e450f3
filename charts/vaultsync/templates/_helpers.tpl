{{/* Chart name, overridable with nameOverride. */}}
{{- define "vaultsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: fullnameOverride, else the release name when it
already contains the chart name, else <release>-<chart>. Truncated to leave room for
the longest suffix the chart appends ("-metrics-reader").
*/}}
{{- define "vaultsync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 47 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 47 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 47 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label value: <name>-<version>. */}}
{{- define "vaultsync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "vaultsync.labels" -}}
helm.sh/chart: {{ include "vaultsync.chart" . }}
app.kubernetes.io/name: {{ include "vaultsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vaultsync
{{- end }}

{{/* Labels that select the manager pods; never change them (Deployment selectors are immutable). */}}
{{- define "vaultsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vaultsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end }}

{{/* Name of the manager's ServiceAccount. */}}
{{- define "vaultsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vaultsync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the HMAC key of status.dataHash. */}}
{{- define "vaultsync.hashKeySecret" -}}
{{- default (printf "%s-hash-key" (include "vaultsync.fullname" .)) .Values.manager.hashKeySecret }}
{{- end }}

{{/* Name of the Secret whose "key" authenticates Key Vault event deliveries. */}}
{{- define "vaultsync.eventsSecret" -}}
{{- default (printf "%s-events" (include "vaultsync.fullname" .)) .Values.events.secretName }}
{{- end }}

{{/* The label the leading manager puts on its own Pod; the events Service selects it. */}}
{{- define "vaultsync.leaderLabel" -}}
vaultsync.io/leader
{{- end }}

{{/* Where the TLS Secret of the events endpoint (events.tls.secretName) is mounted. */}}
{{- define "vaultsync.eventsTLSDir" -}}
/etc/vaultsync/events-tls
{{- end }}

{{/* Where the CA certificates of extraCACertificates are mounted; SSL_CERT_DIR names it. */}}
{{- define "vaultsync.extraCADir" -}}
/etc/vaultsync/ca
{{- end }}

{{/*
Volume source of extraCACertificates: the ConfigMap or Secret (the schema admits at most one),
its key mounted as ca.crt. Empty when neither is set.
*/}}
{{- define "vaultsync.extraCAVolumeSource" -}}
{{- $ca := .Values.extraCACertificates | default dict }}
{{- $cm := $ca.configMap | default dict }}
{{- $secret := $ca.secret | default dict }}
{{- if $cm.name }}
configMap:
  name: {{ $cm.name | quote }}
  items:
    - key: {{ $cm.key | default "ca.crt" | quote }}
      path: ca.crt
{{- else if $secret.name }}
secret:
  secretName: {{ $secret.name | quote }}
  items:
    - key: {{ $secret.key | default "ca.crt" | quote }}
      path: ca.crt
{{- end }}
{{- end }}

{{/*
NO_PROXY of the manager: proxy.noProxy, then what must never go through a proxy: the API server
the in-cluster client dials ($(KUBERNETES_SERVICE_HOST), which the kubelet expands from the
service variables of the "kubernetes" Service, present even with enableServiceLinks=false),
in-cluster names, and the instance metadata endpoint of managed identity.
*/}}
{{- define "vaultsync.noProxy" -}}
{{- $entries := list }}
{{- range splitList "," (.Values.proxy.noProxy | default "") }}
{{- with trim . }}
{{- $entries = append $entries . }}
{{- end }}
{{- end }}
{{- $entries = concat $entries (list "$(KUBERNETES_SERVICE_HOST)" ".svc" ".cluster.local" "169.254.169.254") }}
{{- join "," (uniq $entries) }}
{{- end }}

{{/* Where the TLS Secret of the metrics endpoint (metrics.tls.secretName) is mounted. */}}
{{- define "vaultsync.metricsTLSDir" -}}
/etc/vaultsync/metrics-tls
{{- end }}

{{/* Whether the manager serves the certificate of metrics.tls.secretName: "true" or "". */}}
{{- define "vaultsync.metricsTLS" -}}
{{- if and .Values.metrics.enabled .Values.metrics.secure .Values.metrics.tls.secretName }}true{{ end }}
{{- end }}

{{/* Image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "vaultsync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The ServiceAccount as an RBAC subject. */}}
{{- define "vaultsync.subject" -}}
- kind: ServiceAccount
  name: {{ include "vaultsync.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/* Resources of the ClusterVaultConnection controller (cluster-scoped). */}}
{{- define "vaultsync.clusterConnectionResources" -}}
- clustervaultconnections
- clustervaultconnections/status
{{- end }}

{{/*
The manager's generated rules (vaultsync.managerRules) for one kind of role. Call with
(dict "ctx" $ "clusterRole" true|false). The ClusterVaultConnection resources are dropped
from a Role (it cannot grant cluster-scoped resources; the <fullname>-cluster-connections
ClusterRole does that in watchNamespaces mode) and from every role when
clusterConnections.enabled is false. A rule left without resources is dropped; every other
rule is passed through unchanged, so the cluster-wide default equals config/rbac/role.yaml.
*/}}
{{- define "vaultsync.managerRulesFor" -}}
{{- $drop := list }}
{{- if or (not .clusterRole) (not .ctx.Values.clusterConnections.enabled) }}
{{- $drop = include "vaultsync.clusterConnectionResources" .ctx | fromYamlArray }}
{{- end }}
{{- $rules := list }}
{{- range $rule := include "vaultsync.managerRules" .ctx | fromYamlArray }}
{{- if and $drop (has "vaultsync.io" ($rule.apiGroups | default list)) (hasKey $rule "resources") }}
{{- $kept := list }}
{{- range $rule.resources }}
{{- if not (has . $drop) }}
{{- $kept = append $kept . }}
{{- end }}
{{- end }}
{{- if $kept }}
{{- $rules = append $rules (set (deepCopy $rule) "resources" $kept) }}
{{- end }}
{{- else }}
{{- $rules = append $rules $rule }}
{{- end }}
{{- end }}
{{- toYaml $rules }}
{{- end }}
