{{/* Chart name. */}}
{{- define "podidentity.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every object's name: the release name, or <release>-<chart> when
the release name does not contain the chart name. fullnameOverride=podidentity
gives the names of config/default. At most 28 characters, so that
<fullname>-controller-manager-metrics-service is a valid Service name.
*/}}
{{- define "podidentity.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 28 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 28 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 28 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "podidentity.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "podidentity.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selects the operator's pods. */}}
{{- define "podidentity.selectorLabels" -}}
control-plane: controller-manager
app.kubernetes.io/name: {{ include "podidentity.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "podidentity.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default "podidentity-controller-manager" .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "podidentity.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default (printf "v%s" .Chart.AppVersion) .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* imagePullSecrets and global.imagePullSecrets, as names or {name: ...}. */}}
{{- define "podidentity.imagePullSecrets" -}}
{{- $all := concat (default list .Values.imagePullSecrets) (default list (.Values.global).imagePullSecrets) -}}
{{- range $all }}
- name: {{ if kindIs "string" . }}{{ . }}{{ else }}{{ .name }}{{ end }}
{{- end }}
{{- end -}}

{{/* Names the operator is told with flags, so that two releases never collide. */}}
{{- define "podidentity.webhookServiceName" -}}{{ include "podidentity.fullname" . }}-webhook-service{{- end -}}
{{- define "podidentity.webhookConfigName" -}}{{ include "podidentity.fullname" . }}-validating-webhook-configuration{{- end -}}
{{- define "podidentity.mutatingWebhookConfigName" -}}{{ include "podidentity.fullname" . }}-mutating-webhook-configuration{{- end -}}
{{- define "podidentity.webhookSecretName" -}}{{ include "podidentity.fullname" . }}-webhook-server-cert{{- end -}}
{{- define "podidentity.metricsSecretName" -}}{{ include "podidentity.fullname" . }}-metrics-server-cert{{- end -}}
{{- define "podidentity.metricsServiceName" -}}{{ include "podidentity.fullname" . }}-controller-manager-metrics-service{{- end -}}
{{- define "podidentity.certificateName" -}}{{ include "podidentity.fullname" . }}-serving-cert{{- end -}}

{{/*
Checks what the schema cannot express, with messages that say what to set.
Included by the Deployment, so every rendering runs it.
*/}}
{{- define "podidentity.validate" -}}
{{- if not .Values.clusterName -}}
{{- fail "clusterName is required: --set clusterName=<this cluster's name> (it goes into every role's ownership tag and name)" -}}
{{- end -}}
{{- if has (lower .Values.clusterName) (list "change-me" "changeme" "cluster-name" "clustername" "cluster" "todo" "example" "placeholder") -}}
{{- fail (printf "clusterName %q is a placeholder: set this cluster's real name" .Values.clusterName) -}}
{{- end -}}
{{- if and .Values.podIdentityWebhook.enabled (not .Values.webhook.enabled) -}}
{{- fail "podIdentityWebhook.enabled needs webhook.enabled=true (the pod identity webhook is served by the same webhook server and certificate)" -}}
{{- end -}}
{{- if and (eq .Values.podIdentity.defaultIdentity "EKSPodIdentity") (not .Values.podIdentity.eksClusterName) -}}
{{- fail "podIdentity.defaultIdentity EKSPodIdentity needs podIdentity.eksClusterName (the cluster whose pod identity associations the operator manages)" -}}
{{- end -}}
{{- if and .Values.operatorCredentials.webIdentityRoleArn .Values.operatorCredentials.secretName -}}
{{- fail "operatorCredentials: set webIdentityRoleArn or secretName, not both (the SDK would use the Secret's keys and ignore the role)" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.namespace .Values.metrics.certManager.enabled (ne .Values.metrics.serviceMonitor.namespace .Release.Namespace) -}}
{{- fail "metrics.serviceMonitor.namespace with metrics.certManager.enabled: Prometheus reads the CA from the ServiceMonitor's namespace, and cert-manager writes it in the release namespace; leave metrics.serviceMonitor.namespace empty" -}}
{{- end -}}
{{- if ne 3 (len (uniq (list (int .Values.webhook.port) (int .Values.metrics.port) (int .Values.healthProbe.port)))) -}}
{{- fail (printf "webhook.port %v, metrics.port %v and healthProbe.port %v must differ" .Values.webhook.port .Values.metrics.port .Values.healthProbe.port) -}}
{{- end -}}
{{- if and .Values.webhook.enabled .Values.podDisruptionBudget.enabled (le (int .Values.replicaCount) (int .Values.podDisruptionBudget.minAvailable)) -}}
{{- fail (printf "replicaCount %d with podDisruptionBudget.minAvailable %d would block every node drain: raise replicaCount or set podDisruptionBudget.enabled=false" (int .Values.replicaCount) (int .Values.podDisruptionBudget.minAvailable)) -}}
{{- end -}}
{{- end -}}

{{/*
Who writes the webhook configurations' caBundle: cert-manager's CA injector
(from the chart's Certificate) or the operator itself.
*/}}
{{- define "podidentity.caBundleAnnotations" -}}
{{- if eq .Values.webhook.certificates "certManager" -}}
cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "podidentity.certificateName" .) }}
{{- else -}}
podidentity.io/ca-bundle: self-managed
{{- end -}}
{{- end }}
