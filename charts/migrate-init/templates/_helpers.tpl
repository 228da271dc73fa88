{{/*
The chart's values as YAML, whether the caller is this chart or a parent
chart that depends on it (the parent's .Values then hold ours under
"migrate-init"): every template that a parent may include reads its values
through this, so `include "migrate-init.waitInitContainer" .` works in both.
*/}}
{{- define "migrate-init.vals" -}}
{{- if hasKey .Values "migrate-init" -}}
{{- index .Values "migrate-init" | toYaml -}}
{{- else -}}
{{- .Values | toYaml -}}
{{- end -}}
{{- end -}}

{{- define "migrate-init.fullname" -}}
{{- $v := include "migrate-init.vals" . | fromYaml -}}
{{- if $v.fullnameOverride -}}
{{- $v.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "migrate-init" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-migrate-init" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The Secret the URL comes from: the existing one, or the one we create. */}}
{{- define "migrate-init.secretName" -}}
{{- $v := include "migrate-init.vals" . | fromYaml -}}
{{- if $v.database.existingSecret -}}
{{- $v.database.existingSecret -}}
{{- else -}}
{{- printf "%s-db" (include "migrate-init.fullname" . | trunc 60 | trimSuffix "-") -}}
{{- end -}}
{{- end -}}

{{/*
The migrations image. Its tag defaults to this chart's appVersion; a parent
chart must set migrate-init.image.tag (its .Chart is its own).
*/}}
{{- define "migrate-init.image" -}}
{{- $v := include "migrate-init.vals" . | fromYaml -}}
{{- $tag := toString (default "" $v.image.tag) -}}
{{- if not $tag -}}
{{- if hasKey .Values "migrate-init" -}}
{{- fail "migrate-init: set migrate-init.image.tag (your migrations image's tag)" -}}
{{- end -}}
{{- $tag = .Chart.AppVersion -}}
{{- end -}}
{{- printf "%s:%s" $v.image.repository $tag -}}
{{- end -}}

{{- define "migrate-init.labels" -}}
app.kubernetes.io/name: migrate-init
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* The security context of k8s/ (a test compares them): the pod's ... */}}
{{- define "migrate-init.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* ... and each container's. */}}
{{- define "migrate-init.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
migrate-init.waitInitContainer: an initContainer for the app's own pods that
runs `migrate-init wait`: it blocks until the database is at the newest
version of the image's /migrations (what the hook Job applies) and clean,
then exits 0 and the app starts (exit 10 when wait.timeout passes first, 8
when the database is dirty with no migration running; the kubelet retries
with back-off). It reads the URL from the file of the volume
migrate-init.waitVolume, which the pod must list too; the file is mode 0440,
group 65532, so the pod needs securityContext.fsGroup: 65532. In the app's
Deployment (this chart, or a parent chart depending on it):

  spec:
    template:
      spec:
        securityContext:
          fsGroup: 65532
        initContainers:
          {{- include "migrate-init.waitInitContainer" . | nindent 10 }}
        volumes:
          {{- include "migrate-init.waitVolume" . | nindent 10 }}
*/}}
{{- define "migrate-init.waitInitContainer" -}}
{{- $v := include "migrate-init.vals" . | fromYaml -}}
- name: wait-for-schema
  image: {{ include "migrate-init.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: ["wait"]
  env:
    - name: DATABASE_URL_FILE
      value: /var/run/secrets/migrate-init-db/DATABASE_URL
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: WAIT_TIMEOUT # the deadline; MAX_RETRIES must not end the wait first
      value: {{ $v.wait.timeout | quote }}
    - name: MAX_RETRIES
      value: {{ $v.wait.maxRetries | toString | quote }}
  resources:
    {{- toYaml $v.wait.resources | nindent 4 }}
  securityContext:
    {{- include "migrate-init.containerSecurityContext" . | nindent 4 }}
  terminationMessagePolicy: FallbackToLogsOnError
  volumeMounts:
    - name: migrate-init-db
      mountPath: /var/run/secrets/migrate-init-db
      readOnly: true
{{- end -}}

{{- define "migrate-init.waitVolume" -}}
{{- $v := include "migrate-init.vals" . | fromYaml -}}
- name: migrate-init-db
  secret:
    secretName: {{ include "migrate-init.secretName" . }}
    defaultMode: 0440
    items:
      - key: {{ $v.database.secretKey }}
        path: DATABASE_URL
{{- end -}}
