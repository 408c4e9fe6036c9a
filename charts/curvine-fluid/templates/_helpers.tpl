{{/*
Names. Everything is named after the release (or fullnameOverride): <name>-master,
<name>-master-headless, <name>-worker, ... At most 40 characters, so that
<name>-master-headless and the pods' DNS labels stay within 63.
*/}}
{{- define "curvine.fullname" -}}
{{- $name := default .Release.Name .Values.fullnameOverride -}}
{{- if gt (len $name) 40 -}}
{{- fail (printf "the name %q is longer than 40 characters; the pods' DNS names need the rest: use a shorter release name or fullnameOverride" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- define "curvine.masterName" -}}{{ include "curvine.fullname" . }}-master{{- end -}}
{{- define "curvine.masterHeadless" -}}{{ include "curvine.fullname" . }}-master-headless{{- end -}}
{{- define "curvine.masterExternal" -}}{{ include "curvine.fullname" . }}-master-external{{- end -}}
{{- define "curvine.workerName" -}}{{ include "curvine.fullname" . }}-worker{{- end -}}
{{- define "curvine.workerHeadless" -}}{{ include "curvine.fullname" . }}-worker-headless{{- end -}}
{{- define "curvine.configName" -}}{{ include "curvine.fullname" . }}-config{{- end -}}
{{- define "curvine.fuseName" -}}{{ include "curvine.fullname" . }}-fuse{{- end -}}

{{- define "curvine.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "curvine.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "curvine.image" -}}
{{- printf "%s:%s" .Values.image.repository (toString .Values.image.tag) -}}
{{- end -}}

{{/* Labels: the common set, and the selector of one component (dict root, component). */}}
{{- define "curvine.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "curvine.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* DNS names: master i and worker i through their headless services. */}}
{{- define "curvine.masterHost" -}}
{{- $ := .root -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "curvine.masterName" $) (int .i) (include "curvine.masterHeadless" $) $.Release.Namespace $.Values.global.clusterDomain -}}
{{- end -}}

{{- define "curvine.workerHost" -}}
{{- $ := .root -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "curvine.workerName" $) (int .i) (include "curvine.workerHeadless" $) $.Release.Namespace $.Values.global.clusterDomain -}}
{{- end -}}

{{/* The node directory the FUSE DaemonSet shares with its pods, and the mount point in it. */}}
{{- define "curvine.fuseRoot" -}}
{{- printf "%s/%s/%s" (trimSuffix "/" .Values.fuse.hostPath) .Release.Namespace (include "curvine.fullname" .) -}}
{{- end -}}
{{- define "curvine.fuseMount" -}}{{ include "curvine.fuseRoot" . }}/fuse{{- end -}}

{{/*
The log filter (env CURVINE_LOG) for config.log.level; the libraries' chatter stays at
warn unless the level is debug or trace.
*/}}
{{- define "curvine.logFilter" -}}
{{- $level := lower (toString .Values.config.log.level) -}}
{{- if not (has $level (list "error" "warn" "info" "debug" "trace")) -}}
{{- fail (printf "config.log.level %q is not one of INFO, DEBUG, WARN, ERROR, TRACE" (toString .Values.config.log.level)) -}}
{{- end -}}
{{- if has $level (list "debug" "trace") -}}
{{- printf "%s,h2=info,tower=info,hyper=info" $level -}}
{{- else -}}
{{- printf "%s,openraft=warn,sled=warn,h2=warn,tower=warn,hyper=warn" $level -}}
{{- end -}}
{{- end -}}

{{/*
Storage of one volume (meta, journal or a worker data dir): "pvc", "hostPath" or
"emptyDir". A storageClass makes a claim, else a hostPath makes a hostPath, else (or
when enabled is false) an emptyDir. A MEM data dir is always a memory emptyDir.
*/}}
{{- define "curvine.storageKind" -}}
{{- if eq (upper (toString (default "" .type))) "MEM" -}}
memory
{{- else if not .enabled -}}
emptyDir
{{- else if .storageClass -}}
pvc
{{- else if .hostPath -}}
hostPath
{{- else -}}
emptyDir
{{- end -}}
{{- end -}}

{{/* A volumeClaimTemplate for a volume of kind pvc (dict name, vol, labels). */}}
{{- define "curvine.claimTemplate" -}}
- metadata:
    name: {{ .name }}
    labels:
      {{- .labels | nindent 6 }}
  spec:
    accessModes: [ReadWriteOnce]
    {{- if ne (toString .vol.storageClass) "default" }}
    storageClassName: {{ .vol.storageClass | quote }}
    {{- end }}
    resources:
      requests:
        storage: {{ .vol.size | quote }}
{{- end -}}

{{/* A pod volume for a volume of kind hostPath, emptyDir or memory (dict name, vol). */}}
{{- define "curvine.podVolume" -}}
{{- $kind := include "curvine.storageKind" .vol -}}
{{- if eq $kind "hostPath" -}}
- name: {{ .name }}
  hostPath:
    path: {{ .vol.hostPath | quote }}
    type: DirectoryOrCreate
{{- else if eq $kind "memory" -}}
- name: {{ .name }}
  emptyDir:
    medium: Memory
    sizeLimit: {{ .vol.size | quote }}
{{- else if eq $kind "emptyDir" -}}
- name: {{ .name }}
  emptyDir: {}
{{- end -}}
{{- end -}}

{{/* The mount of such a volume; a hostPath gets one directory per pod under it. */}}
{{- define "curvine.volumeMount" -}}
- name: {{ .name }}
  mountPath: {{ .vol.mountPath | quote }}
  {{- if eq (include "curvine.storageKind" .vol) "hostPath" }}
  subPathExpr: $(POD_NAME)
  {{- end }}
{{- end -}}

{{/*
What the journal's storage is, for the upgrade check: "claim of class X", "hostPath X"
or "emptyDir".
*/}}
{{- define "curvine.journalStorage" -}}
{{- $j := .Values.master.storage.journal -}}
{{- $kind := include "curvine.storageKind" $j -}}
{{- if eq $kind "pvc" -}}
{{- printf "claim of class %s" (ternary "(cluster default)" (toString $j.storageClass) (eq (toString $j.storageClass) "default")) -}}
{{- else if eq $kind "hostPath" -}}
{{- printf "hostPath %s" $j.hostPath -}}
{{- else -}}
emptyDir
{{- end -}}
{{- end -}}

{{/*
A worker data dir's capacity in Curvine's units from its Kubernetes quantity: binary
suffixes keep their number (10Gi -> 10GB), decimal ones become exact bytes
(500G -> 500000000000B).
*/}}
{{- define "curvine.capacity" -}}
{{- $s := .size -}}
{{- if not (kindIs "string" $s) -}}
{{- fail (printf "worker.storage.dataDirs %s: size must be a quoted quantity such as \"10Gi\"" .name) -}}
{{- end -}}
{{- if regexMatch "^[1-9][0-9]*(Ki|Mi|Gi|Ti|Pi)$" $s -}}
{{- regexReplaceAll "i$" $s "B" -}}
{{- else if regexMatch "^[1-9][0-9]*(k|M|G|T|P)?$" $s -}}
{{- $n := regexFind "^[0-9]+" $s | atoi -}}
{{- $unit := trimPrefix (toString $n) $s -}}
{{- $factor := get (dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "P" 1000000000000000) $unit -}}
{{- printf "%dB" (mul $n $factor) -}}
{{- else -}}
{{- fail (printf "worker.storage.dataDirs %s: size %q is not a whole Kubernetes quantity such as 10Gi, 1536Mi or 500G" .name $s) -}}
{{- end -}}
{{- end -}}

{{/* The worker's data_dir entries, fastest tier first as listed, as a JSON array. */}}
{{- define "curvine.dataDirs" -}}
{{- $dirs := list -}}
{{- range .Values.worker.storage.dataDirs -}}
{{- if .enabled -}}
{{- $dirs = append $dirs (printf "[%s:%s]%s" (upper .type) (include "curvine.capacity" .) .mountPath) -}}
{{- end -}}
{{- end -}}
{{- toJson $dirs -}}
{{- end -}}

{{/* TOML: a key (bare when it can be) and a value of any YAML type. */}}
{{- define "curvine.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{- define "curvine.tomlValue" -}}
{{- $v := . -}}
{{- if kindIs "map" $v -}}
{{- if not $v -}}{}{{- else -}}
{ {{- range $i, $k := keys $v | sortAlpha }}{{ if $i }},{{ end }} {{ include "curvine.tomlKey" $k }} = {{ include "curvine.tomlValue" (index $v $k) }}{{ end }} }
{{- end -}}
{{- else if kindIs "slice" $v -}}
{{- if and $v (kindIs "map" (first $v)) -}}
[
{{- range $v }}
    {{ include "curvine.tomlValue" . }},
{{- end }}
]
{{- else -}}
[{{- range $i, $e := $v }}{{ if $i }}, {{ end }}{{ include "curvine.tomlValue" $e }}{{ end }}]
{{- end -}}
{{- else if kindIs "invalid" $v -}}
{{- fail "configOverrides: a value is empty (null); TOML has no null" -}}
{{- else -}}
{{- toJson $v -}}
{{- end -}}
{{- end -}}

{{/*
One TOML section: the chart's keys (dict generated), then configOverrides.<section> (which
may not set a key listed in refused). dict: name, generated, overrides, refused.
*/}}
{{- define "curvine.tomlSection" -}}
{{- $overrides := default dict .overrides -}}
{{- range $k := .refused -}}
{{- if hasKey $overrides $k -}}
{{- fail (printf "configOverrides.%s.%s is set by the chart from its values; remove it (see values.yaml)" $.name $k) -}}
{{- end -}}
{{- end -}}
{{- $all := merge (deepCopy $overrides) .generated }}
[{{ .name }}]
{{- range $k := keys $all | sortAlpha }}
{{ include "curvine.tomlKey" $k }} = {{ include "curvine.tomlValue" (index $all $k) }}
{{- end }}
{{- end -}}

{{/*
The curvine-cluster.toml of one pod (dict root, role: master|worker|client, i: ordinal).
Masters name themselves in [master] and [journal], workers in [worker]; the rest is the
same for every pod, except that only clients get [fuse] and masters get no [worker].
*/}}
{{- define "curvine.config" -}}
{{- $ := .root -}}
{{- $v := $.Values -}}
{{- $o := $v.configOverrides -}}
{{- $peers := list -}}
{{- $addrs := list -}}
{{- range $i := until (int $v.master.replicas) -}}
{{- $host := include "curvine.masterHost" (dict "root" $ "i" $i) -}}
{{- $peers = append $peers (dict "id" (add $i 1) "hostname" $host "port" $v.master.journalPort) -}}
{{- $addrs = append $addrs (dict "hostname" $host "port" $v.master.rpcPort) -}}
{{- end -}}
{{- $master := dict "rpc_port" $v.master.rpcPort "web_port" $v.master.webPort "meta_dir" $v.config.master.metaDir -}}
{{- $journal := dict "rpc_port" $v.master.journalPort "journal_dir" $v.config.journal.journalDir "journal_addrs" $peers -}}
{{- $worker := dict "rpc_port" $v.worker.rpcPort "web_port" $v.worker.webPort "data_dir" (include "curvine.dataDirs" $ | fromJsonArray) -}}
{{- if eq .role "master" -}}
{{- $self := include "curvine.masterHost" (dict "root" $ "i" .i) -}}
{{- $_ := set $master "hostname" $self -}}
{{- $_ := set $journal "hostname" $self -}}
{{- else if eq .role "worker" -}}
{{- $_ := set $worker "hostname" (include "curvine.workerHost" (dict "root" $ "i" .i)) -}}
{{- end -}}
{{- $client := dict "master_addrs" $addrs "block_size_str" $v.config.client.blockSizeStr -}}
{{- $fuse := dict "mnt_path" (include "curvine.fuseMount" $) "fs_path" $v.fuse.fsPath "readonly" $v.fuse.readOnly "web_port" $v.fuse.webPort -}}
{{- $log := dict "level" (lower (toString $v.config.log.level)) "log_dir" $v.config.log.logDir -}}
# curvine-cluster.toml of {{ if eq .role "client" }}clients (FUSE, helm test, `curvine-fluid fs` and `report`){{ else }}{{ .role }} {{ .i }}{{ end }},
# rendered by the curvine-fluid chart ({{ $.Release.Name }}) and read as is (--conf).
cluster_id = {{ toJson (toString $v.cluster.id) }}
format_master = {{ or $v.cluster.formatMaster $v.cluster.formatJournal }}
format_worker = {{ $v.cluster.formatWorker }}
{{ include "curvine.tomlSection" (dict "name" "master" "generated" $master "overrides" $o.master "refused" (list "hostname" "rpc_port" "web_port" "meta_dir")) }}
{{ include "curvine.tomlSection" (dict "name" "journal" "generated" $journal "overrides" $o.journal "refused" (list "hostname" "rpc_port" "journal_dir" "journal_addrs")) }}
{{- /* Masters do not read [worker]: a change of the tiers does not roll them. */}}
{{- if ne .role "master" }}
{{ include "curvine.tomlSection" (dict "name" "worker" "generated" $worker "overrides" $o.worker "refused" (list "hostname" "rpc_port" "web_port" "data_dir")) }}
{{- end }}
{{ include "curvine.tomlSection" (dict "name" "client" "generated" $client "overrides" $o.client "refused" (list "master_addrs" "block_size")) }}
{{- if eq .role "client" }}
{{ include "curvine.tomlSection" (dict "name" "fuse" "generated" $fuse "overrides" $o.fuse "refused" (list "mnt_path" "fs_path" "readonly" "web_port")) }}
{{- end }}
{{ include "curvine.tomlSection" (dict "name" "log" "generated" $log "overrides" $o.log "refused" (list)) }}
{{- end -}}

{{/* Checks of the values, run once per render (from the ConfigMap's template). */}}
{{- define "curvine.validate" -}}
{{- $v := .Values -}}
{{- $m := int $v.master.replicas -}}
{{- if or (lt $m 1) (eq (mod $m 2) 0) -}}
{{- fail (printf "master.replicas must be odd (1, 3, 5 or 7): Raft needs a majority of the masters, so an even count adds nothing; got %v" $v.master.replicas) -}}
{{- end -}}
{{- if lt (int $v.worker.replicas) 1 -}}
{{- fail (printf "worker.replicas must be at least 1; got %v" $v.worker.replicas) -}}
{{- end -}}
{{- if not $v.config.journal.enable -}}
{{- fail "config.journal.enable: false is not supported: curvine-fluid masters always keep their metadata in a Raft journal" -}}
{{- end -}}
{{- range $key, $dir := dict "meta" $v.config.master.metaDir "journal" $v.config.journal.journalDir -}}
{{- $mount := trimSuffix "/" (index $v.master.storage $key).mountPath -}}
{{- if not (or (eq $dir $mount) (hasPrefix (printf "%s/" $mount) $dir)) -}}
{{- fail (printf "the %s directory %q is not on its volume (master.storage.%s.mountPath %q): make it the mount path or a directory below it" $key $dir $key $mount) -}}
{{- end -}}
{{- end -}}
{{- $names := dict "config" true -}}
{{- $enabled := 0 -}}
{{- range $d := $v.worker.storage.dataDirs -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" (toString $d.name)) -}}
{{- fail (printf "worker.storage.dataDirs: name %q must be a DNS label (lowercase letters, digits, -)" (toString $d.name)) -}}
{{- end -}}
{{- if hasKey $names $d.name -}}
{{- fail (printf "worker.storage.dataDirs: name %q is used twice (or is \"config\")" $d.name) -}}
{{- end -}}
{{- $_ := set $names $d.name true -}}
{{- if $d.enabled -}}
{{- $enabled = add1 $enabled -}}
{{- if not (has (upper (toString $d.type)) (list "SSD" "HDD" "MEM" "DISK")) -}}
{{- fail (printf "worker.storage.dataDirs %s: type %q is not SSD, HDD, MEM or DISK" $d.name (toString $d.type)) -}}
{{- end -}}
{{- if not (hasPrefix "/" (toString $d.mountPath)) -}}
{{- fail (printf "worker.storage.dataDirs %s: mountPath %q is not an absolute path" $d.name (toString $d.mountPath)) -}}
{{- end -}}
{{- if and (eq (upper $d.type) "MEM") (or $d.storageClass $d.hostPath) -}}
{{- fail (printf "worker.storage.dataDirs %s: a MEM tier is a memory emptyDir; remove its storageClass and hostPath" $d.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if eq $enabled 0 -}}
{{- fail "worker.storage.dataDirs: no tier is enabled; the workers need at least one" -}}
{{- end -}}
{{- include "curvine.protectUpgrade" . -}}
{{- end -}}

{{/*
An installed release keeps its master count and journal storage: `helm upgrade` fails when
either would change (the Raft group and its journal are fixed; redeploy to change them).
`lookup` finds nothing under `helm template` or on a first install.
*/}}
{{- define "curvine.protectUpgrade" -}}
{{- $sts := lookup "apps/v1" "StatefulSet" .Release.Namespace (include "curvine.masterName" .) -}}
{{- if $sts -}}
{{- include "curvine.checkInstalled" (dict "root" . "sts" $sts) -}}
{{- end -}}
{{- end -}}

{{/* The comparison itself, with the installed master StatefulSet (dict root, sts). */}}
{{- define "curvine.checkInstalled" -}}
{{- $sts := .sts -}}
{{- $v := .root.Values -}}
{{- $current := int (dig "spec" "replicas" 1 $sts) -}}
{{- if ne $current (int $v.master.replicas) -}}
{{- fail (printf "master.replicas cannot change on an installed release (installed: %d, requested: %v): the Raft group is fixed; uninstall and install again to resize it" $current $v.master.replicas) -}}
{{- end -}}
{{- $installed := "emptyDir" -}}
{{- range (dig "spec" "template" "spec" "volumes" list $sts) -}}
{{- if and (eq .name "journal") .hostPath -}}
{{- $installed = printf "hostPath %s" .hostPath.path -}}
{{- end -}}
{{- end -}}
{{- range (dig "spec" "volumeClaimTemplates" list $sts) -}}
{{- if eq .metadata.name "journal" -}}
{{- $installed = printf "claim of class %s" (default "(cluster default)" (dig "spec" "storageClassName" "" .)) -}}
{{- end -}}
{{- end -}}
{{- $wanted := include "curvine.journalStorage" .root -}}
{{- if ne $installed $wanted -}}
{{- fail (printf "master.storage.journal cannot change on an installed release (installed: %s, requested: %s): the Raft journal stays where it is; uninstall and install again to move it" $installed $wanted) -}}
{{- end -}}
{{- end -}}

{{/* The env every curvine-fluid container gets (dict root, conf: the config file). */}}
{{- define "curvine.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: CURVINE_CONF_FILE
  value: {{ .conf | quote }}
- name: CURVINE_LOG
  value: {{ include "curvine.logFilter" .root | quote }}
{{- if .root.Values.security.secretName }}
- name: CURVINE_SECURITY_DIR
  value: /etc/curvine-security
{{- end }}
{{- end -}}

{{/* The security Secret's mount, when security.secretName is set (root). */}}
{{- define "curvine.securityMount" -}}
{{- if .Values.security.secretName }}
- name: security
  mountPath: /etc/curvine-security
  readOnly: true
{{- end }}
{{- end -}}

{{/* The security Secret's volume, when security.secretName is set (root). */}}
{{- define "curvine.securityVolume" -}}
{{- if .Values.security.secretName }}
- name: security
  secret:
    secretName: {{ .Values.security.secretName | quote }}
{{- end }}
{{- end -}}
