{{/* The chart's name, or nameOverride. */}}
{{- define "castle-destination.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name of every object: the release name when it already contains
the chart's name, else release-chart; fullnameOverride wins. */}}
{{- define "castle-destination.fullname" -}}
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

{{- define "castle-destination.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "castle-destination.selectorLabels" . }}
app.kubernetes.io/version: {{ regexReplaceAll "[^-A-Za-z0-9_.]" (.Values.image.tag | default .Chart.AppVersion | toString) "_" | trunc 63 | trimAll "-_." | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The worker's pods. Replay pods carry component=replay instead, so the
Service, the PodDisruptionBudget and the ServiceMonitor never select them. */}}
{{- define "castle-destination.selectorLabels" -}}
app.kubernetes.io/name: {{ include "castle-destination.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "castle-destination.workerSelectorLabels" -}}
{{ include "castle-destination.selectorLabels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{/* The image: by digest when image.digest is set, else by tag. */}}
{{- define "castle-destination.image" -}}
{{- if .Values.image.digest }}
{{- .Values.image.repository }}@{{ .Values.image.digest }}
{{- else }}
{{- .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
{{- end }}

{{/* podLabels and podAnnotations, their values quoted: a label or an
annotation is a string, and YAML reads false or 2 as something else. */}}
{{- define "castle-destination.podLabels" -}}
{{- range $k, $v := .Values.podLabels }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end }}

{{- define "castle-destination.podAnnotations" -}}
{{- range $k, $v := . }}
{{ $k }}: {{ $v | toString | quote }}
{{- end }}
{{- end }}

{{- define "castle-destination.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "castle-destination.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The API secret's Secret: required, never a literal. */}}
{{- define "castle-destination.apiSecretName" -}}
{{- required "castle.existingSecret: name the Secret holding the Castle API secret (kubectl create secret generic NAME --from-literal=castle-api-secret=...)" .Values.castle.existingSecret }}
{{- end }}

{{- define "castle-destination.kafkaTLSDir" -}}/etc/castle-destination/kafka-tls{{- end }}
{{- define "castle-destination.eventMapDir" -}}/etc/castle-destination/event-map{{- end }}
{{- define "castle-destination.castleCADir" -}}/etc/castle-destination/castle-ca{{- end }}

{{/* The settings as a dict of strings: .Values.config, plus what the chart
derives from eventMap and kafka.tls. */}}
{{- define "castle-destination.settings" -}}
{{- $out := dict }}
{{- range $k, $v := .Values.config }}
{{- $s := toString $v }}
{{- if kindIs "float64" $v }}
{{- if eq (float64 (int64 $v)) $v }}{{ $s = toString (int64 $v) }}{{ end }}
{{- end }}
{{- if kindIs "invalid" $v }}{{ $s = "" }}{{ end }}
{{- /* YAML reads an unquoted on or off as a boolean: CASTLE_SCORING takes on or off. */}}
{{- if and (kindIs "bool" $v) (eq $k "CASTLE_SCORING") }}{{ $s = ternary "on" "off" $v }}{{ end }}
{{- $_ := set $out $k $s }}
{{- end }}
{{- if .Values.eventMap }}
{{- $_ := set $out "EVENT_MAP" (printf "%s/event-map.yaml" (include "castle-destination.eventMapDir" .)) }}
{{- end }}
{{- with .Values.kafka.tls }}
{{- if .existingSecret }}
{{- $dir := include "castle-destination.kafkaTLSDir" $ }}
{{- $_ := set $out "KAFKA_TLS" "true" }}
{{- if .caKey }}{{ $_ := set $out "KAFKA_TLS_CA_FILE" (printf "%s/%s" $dir .caKey) }}{{ end }}
{{- if .certKey }}{{ $_ := set $out "KAFKA_TLS_CERT_FILE" (printf "%s/%s" $dir .certKey) }}{{ end }}
{{- if .keyKey }}{{ $_ := set $out "KAFKA_TLS_KEY_FILE" (printf "%s/%s" $dir .keyKey) }}{{ end }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* KEDA spells the worker's SASL mechanisms its own way. */}}
{{- define "castle-destination.kedaSASL" -}}
{{- $m := dict "plain" "plaintext" "scram-sha-256" "scram_sha256" "scram-sha-512" "scram_sha512" }}
{{- $mech := .Values.config.KAFKA_SASL_MECHANISM | default "" | lower }}
{{- if $mech }}
{{- required (printf "config.KAFKA_SASL_MECHANISM %q is not plain, scram-sha-256 or scram-sha-512" $mech) (get $m $mech) }}
{{- end }}
{{- end }}

{{/* Whether KEDA needs a TriggerAuthentication. */}}
{{- define "castle-destination.kedaAuth" -}}
{{- if or (include "castle-destination.kedaSASL" .) .Values.kafka.tls.existingSecret }}true{{ end }}
{{- end }}

{{/* The environment both the worker and the replay read: settings, the API
secret and the SASL password. */}}
{{- define "castle-destination.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "castle-destination.fullname" . }}
env:
  - name: CASTLE_API_SECRET
    valueFrom:
      secretKeyRef:
        name: {{ include "castle-destination.apiSecretName" . }}
        key: {{ .Values.castle.existingSecretKey }}
  {{- if .Values.castle.caConfigMap }}
  - name: SSL_CERT_DIR
    value: {{ include "castle-destination.castleCADir" . }}
  {{- end }}
  {{- if .Values.config.KAFKA_SASL_MECHANISM }}
  - name: KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ required "kafka.sasl.existingSecret: name the Secret holding the SASL password" .Values.kafka.sasl.existingSecret }}
        key: {{ .Values.kafka.sasl.passwordKey }}
  {{- end }}
{{- end }}

{{/* Volumes both the worker and the replay mount. */}}
{{- define "castle-destination.volumes" -}}
{{- if .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.existingSecret }}
{{- end }}
{{- if .Values.eventMap }}
- name: event-map
  configMap:
    name: {{ include "castle-destination.fullname" . }}-event-map
{{- end }}
{{- if .Values.castle.caConfigMap }}
- name: castle-ca
  configMap:
    name: {{ .Values.castle.caConfigMap }}
{{- end }}
{{- end }}

{{- define "castle-destination.volumeMounts" -}}
{{- if .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  mountPath: {{ include "castle-destination.kafkaTLSDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.eventMap }}
- name: event-map
  mountPath: {{ include "castle-destination.eventMapDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.castle.caConfigMap }}
- name: castle-ca
  mountPath: {{ include "castle-destination.castleCADir" . }}
  readOnly: true
{{- end }}
{{- end }}
