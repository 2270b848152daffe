package deploy_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestValuesListEverySetting: the chart's config values and the kustomize
// base's settings.env list the same settings with the same defaults.
func TestValuesListEverySetting(t *testing.T) {
	values := readDocs(t, filepath.Join(chartDir, "values.yaml"))[0]
	config, _ := get(values, "config").(obj)
	env := readEnvFile(t, "settings.env")
	if len(config) == 0 {
		t.Fatal("values.yaml has no config")
	}
	for k, v := range config {
		e, ok := env[k]
		if !ok {
			t.Errorf("values.yaml config.%s is not in settings.env", k)
			continue
		}
		if got := fmt.Sprint(v); got != e {
			t.Errorf("config.%s: values.yaml %q, settings.env %q", k, got, e)
		}
		if _, isString := v.(string); !isString {
			t.Errorf("config.%s = %v (%T): quote it, so it reaches the ConfigMap as written", k, v, v)
		}
	}
	for k := range env {
		if _, ok := config[k]; !ok {
			t.Errorf("settings.env %s is not in values.yaml config", k)
		}
	}
	if s := str(values, "castle", "existingSecret"); s != "" {
		t.Errorf("castle.existingSecret defaults to %q: the secret's Secret must be named by the user", s)
	}
}

// workerContainer returns the Deployment's only container.
func workerContainer(t *testing.T, dep obj) obj {
	t.Helper()
	cs := list(dep, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1", len(cs))
	}
	return cs[0].(obj)
}

// TestChartMatchesKustomize renders the chart with its defaults and the
// kustomize base and compares what matters for running the worker: the
// settings, the container, the pod, the PodDisruptionBudget, the Service
// port, the autoscaler, the alert rules and the replay Job.
func TestChartMatchesKustomize(t *testing.T) {
	chart := helmTemplate(t, "--set", "prometheusRule.enabled=true", "--set", "serviceMonitor.enabled=true",
		"--set", "replay.enabled=true", "--set", "replay.source=s3://segment-archive/segment-logs")
	kust := kustomizeBuild(t, "prometheus-operator", "replay")

	// Settings.
	settings := func(r rendered) obj {
		for _, cm := range r["ConfigMap"] {
			if get(cm, "data", "KAFKA_TOPIC") != nil {
				return get(cm, "data").(obj)
			}
		}
		t.Fatal("no settings ConfigMap")
		return nil
	}
	if c, k := settings(chart), settings(kust); !maps.Equal(c, k) {
		t.Errorf("settings differ:\n chart     %v\n kustomize %v", c, k)
	}

	// The worker's container and pod.
	cd, kd := chart.named(t, "Deployment", ""), kust.named(t, "Deployment", "")
	cc, kc := workerContainer(t, cd), workerContainer(t, kd)
	for _, f := range []string{"name", "args", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext"} {
		if !reflect.DeepEqual(cc[f], kc[f]) {
			t.Errorf("container %s differs:\n chart     %v\n kustomize %v", f, cc[f], kc[f])
		}
	}
	repo := func(image any) string { r, _, _ := strings.Cut(image.(string), ":"); return r }
	if repo(cc["image"]) != repo(kc["image"]) {
		t.Errorf("image %v, kustomize %v", cc["image"], kc["image"])
	}
	secretKey := func(c obj) any {
		for _, e := range list(c, "env") {
			if str(e, "name") == "CASTLE_API_SECRET" {
				return get(e, "valueFrom", "secretKeyRef")
			}
		}
		return nil
	}
	if !reflect.DeepEqual(secretKey(cc), secretKey(kc)) {
		t.Errorf("CASTLE_API_SECRET from %v, kustomize %v", secretKey(cc), secretKey(kc))
	}
	for _, f := range []string{"securityContext", "terminationGracePeriodSeconds", "automountServiceAccountToken"} {
		c, k := get(cd, "spec", "template", "spec", f), get(kd, "spec", "template", "spec", f)
		if !reflect.DeepEqual(c, k) {
			t.Errorf("pod %s differs:\n chart     %v\n kustomize %v", f, c, k)
		}
	}
	for _, f := range []string{"strategy", "revisionHistoryLimit", "replicas"} {
		if c, k := get(cd, "spec", f), get(kd, "spec", f); !reflect.DeepEqual(c, k) {
			t.Errorf("Deployment %s differs: chart %v, kustomize %v", f, c, k)
		}
	}

	// PodDisruptionBudget, Service.
	for _, f := range []string{"maxUnavailable", "unhealthyPodEvictionPolicy"} {
		c := get(chart.named(t, "PodDisruptionBudget", ""), "spec", f)
		k := get(kust.named(t, "PodDisruptionBudget", ""), "spec", f)
		if !reflect.DeepEqual(c, k) || c == nil {
			t.Errorf("PodDisruptionBudget %s: chart %v, kustomize %v", f, c, k)
		}
	}
	if c, k := get(chart.named(t, "Service", ""), "spec", "ports"), get(kust.named(t, "Service", ""), "spec", "ports"); !reflect.DeepEqual(c, k) {
		t.Errorf("Service ports: chart %v, kustomize %v", c, k)
	}

	// Autoscaler: everything but the target's name.
	spec := func(so obj) obj {
		s := maps.Clone(get(so, "spec").(obj))
		delete(s, "scaleTargetRef")
		return s
	}
	if c, k := spec(chart.named(t, "ScaledObject", "")), spec(kust.named(t, "ScaledObject", "")); !reflect.DeepEqual(c, k) {
		t.Errorf("ScaledObject spec differs:\n chart     %v\n kustomize %v", c, k)
	}

	// Prometheus Operator: the same rules, the same scrape.
	rules := readDocs(t, "prometheus/alerts.yaml")[0]
	for what, r := range map[string]rendered{"chart": chart, "kustomize": kust} {
		if got := get(r.named(t, "PrometheusRule", ""), "spec"); !reflect.DeepEqual(got, rules) {
			t.Errorf("%s PrometheusRule spec is not prometheus/alerts.yaml", what)
		}
	}
	if c, k := get(chart.named(t, "ServiceMonitor", ""), "spec", "endpoints"), get(kust.named(t, "ServiceMonitor", ""), "spec", "endpoints"); !reflect.DeepEqual(c, k) {
		t.Errorf("ServiceMonitor endpoints: chart %v, kustomize %v", c, k)
	}

	// Replay Job.
	cj, kj := chart.named(t, "Job", "replay"), kust.named(t, "Job", "replay")
	for _, f := range []string{"completionMode", "completions", "parallelism", "backoffLimit", "ttlSecondsAfterFinished"} {
		if c, k := get(cj, "spec", f), get(kj, "spec", f); !reflect.DeepEqual(c, k) {
			t.Errorf("replay Job %s: chart %v, kustomize %v", f, c, k)
		}
	}
	for _, f := range []string{"restartPolicy", "securityContext", "automountServiceAccountToken"} {
		if c, k := get(cj, "spec", "template", "spec", f), get(kj, "spec", "template", "spec", f); !reflect.DeepEqual(c, k) {
			t.Errorf("replay pod %s: chart %v, kustomize %v", f, c, k)
		}
	}
	// The same arguments once the shard count is spelled out.
	kargs := fmt.Sprint(get(kj, "spec", "template", "spec", "containers", 0, "args"))
	kargs = strings.ReplaceAll(kargs, "$(SHARDS)", fmt.Sprint(get(kj, "spec", "completions")))
	if c := fmt.Sprint(get(cj, "spec", "template", "spec", "containers", 0, "args")); c != kargs {
		t.Errorf("replay args:\n chart     %s\n kustomize %s", c, kargs)
	}
}

// TestChartRequiresSecret: without the API secret's Secret the chart does
// not render, and no literal secret can be given.
func TestChartRequiresSecret(t *testing.T) {
	_, err := helmTemplateErr(t)
	if err == nil || !strings.Contains(err.Error(), "castle.existingSecret") {
		t.Errorf("helm template without castle.existingSecret: %v, want an error naming it", err)
	}
	r := helmTemplate(t)
	for _, kind := range []string{"Secret"} {
		if len(r[kind]) > 0 {
			t.Errorf("the chart renders a %s: secrets must come from the user's own", kind)
		}
	}
}

// TestChartRollsOnSettings: a changed setting or event map changes the pod
// template, so the pods roll.
func TestChartRollsOnSettings(t *testing.T) {
	annotations := func(args ...string) obj {
		return get(helmTemplate(t, args...).named(t, "Deployment", ""), "spec", "template", "metadata", "annotations").(obj)
	}
	base := annotations()
	if base["checksum/config"] == nil {
		t.Fatal("no checksum/config annotation")
	}
	if got := annotations("--set", "config.LOG_LEVEL=debug"); got["checksum/config"] == base["checksum/config"] {
		t.Error("a changed setting leaves checksum/config as it was")
	}
	if got := annotations("--set", "eventMap.events.Signed\\ In.type=$login", "--set", "eventMap.events.Signed\\ In.status=$succeeded"); got["checksum/event-map"] == base["checksum/event-map"] {
		t.Error("an event map leaves checksum/event-map as it was")
	}
}

// TestChartEventMap: a given event map becomes a mounted ConfigMap that
// EVENT_MAP names.
func TestChartEventMap(t *testing.T) {
	r := helmTemplate(t, "-f", "helm/ci/all-on.yaml")
	cm := r.named(t, "ConfigMap", "-event-map")
	file := str(cm, "data", "event-map.yaml")
	if !strings.Contains(file, "Signed In") || !strings.Contains(file, "$login") {
		t.Errorf("event map file = %q", file)
	}
	path := str(r.named(t, "ConfigMap", "castle-destination"), "data", "EVENT_MAP")
	c := workerContainer(t, r.named(t, "Deployment", ""))
	var mounted bool
	for _, m := range list(c, "volumeMounts") {
		if str(m, "name") == "event-map" && path == str(m, "mountPath")+"/event-map.yaml" {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("EVENT_MAP %q is not the mounted event map (mounts %v)", path, list(c, "volumeMounts"))
	}
	// Numbers in a values file stay integers.
	if got := str(r.named(t, "ConfigMap", "castle-destination"), "data", "KAFKA_MAX_IN_FLIGHT"); got != "2000" {
		t.Errorf("KAFKA_MAX_IN_FLIGHT = %q, want 2000", got)
	}
}

// TestChartCastleCA: castle.caConfigMap is mounted into the worker and the
// replay, and SSL_CERT_DIR names the mount, so Go trusts the CAs in it
// besides the public roots (a proxy that re-signs TLS on the way to
// Castle). Unset, neither is there.
func TestChartCastleCA(t *testing.T) {
	r := helmTemplate(t, "--set", "castle.caConfigMap=proxy-ca", "--set", "replay.enabled=true", "--set", "replay.source=s3://b/p")
	for _, spec := range []any{
		get(r.named(t, "Deployment", ""), "spec", "template", "spec"),
		get(r.named(t, "Job", "replay"), "spec", "template", "spec"),
	} {
		c := list(spec, "containers")[0]
		var dir string
		for _, e := range list(c, "env") {
			if str(e, "name") == "SSL_CERT_DIR" {
				dir = str(e, "value")
			}
		}
		var mounted, volume bool
		for _, m := range list(c, "volumeMounts") {
			mounted = mounted || (str(m, "name") == "castle-ca" && str(m, "mountPath") == dir && dir != "")
		}
		for _, v := range list(spec, "volumes") {
			volume = volume || (str(v, "name") == "castle-ca" && str(v, "configMap", "name") == "proxy-ca")
		}
		if !mounted || !volume {
			t.Errorf("SSL_CERT_DIR %q, mounts %v, volumes %v: want the ConfigMap proxy-ca mounted there", dir, list(c, "volumeMounts"), list(spec, "volumes"))
		}
	}
	if strings.Contains(fmt.Sprint(helmTemplate(t).named(t, "Deployment", "")), "SSL_CERT_DIR") {
		t.Error("SSL_CERT_DIR set without castle.caConfigMap")
	}
}

// KEDA takes offsetResetPolicy in lower case only (earliest, latest); the
// worker takes KAFKA_START_OFFSET in any case.
func TestChartOffsetResetPolicyLowerCase(t *testing.T) {
	for in, want := range map[string]string{"LATEST": "latest", "Earliest": "earliest", "latest": "latest"} {
		so := helmTemplate(t, "--set", "config.KAFKA_START_OFFSET="+in).named(t, "ScaledObject", "")
		if got := str(so, "spec", "triggers", 0, "metadata", "offsetResetPolicy"); got != want {
			t.Errorf("KAFKA_START_OFFSET=%s: offsetResetPolicy = %q, want %q", in, got, want)
		}
	}
}

// TestChartKafkaAuth: KEDA gets the worker's SASL mechanism in its own
// spelling, and the same credentials.
func TestChartKafkaAuth(t *testing.T) {
	for mech, keda := range map[string]string{"plain": "plaintext", "scram-sha-256": "scram_sha256", "scram-sha-512": "scram_sha512"} {
		r := helmTemplate(t, "--set", "config.KAFKA_SASL_MECHANISM="+mech, "--set", "kafka.sasl.existingSecret=kafka")
		so := r.named(t, "ScaledObject", "")
		if got := str(so, "spec", "triggers", 0, "metadata", "sasl"); got != keda {
			t.Errorf("%s: KEDA sasl = %q, want %q", mech, got, keda)
		}
		ta := r.named(t, "TriggerAuthentication", "")
		if got, want := str(so, "spec", "triggers", 0, "authenticationRef", "name"), str(ta, "metadata", "name"); got != want {
			t.Errorf("%s: authenticationRef %q, TriggerAuthentication %q", mech, got, want)
		}
		var password bool
		for _, s := range list(ta, "spec", "secretTargetRef") {
			password = password || (str(s, "parameter") == "password" && str(s, "name") == "kafka")
		}
		if !password {
			t.Errorf("%s: TriggerAuthentication has no password from the SASL Secret", mech)
		}
	}
	if _, err := helmTemplateErr(t, "--set", "castle.existingSecret=x", "--set", "config.KAFKA_SASL_MECHANISM=gssapi",
		"--set", "kafka.sasl.existingSecret=kafka"); err == nil {
		t.Error("an unknown SASL mechanism rendered")
	}
	// Without SASL or TLS there is nothing to authenticate with.
	if r := helmTemplate(t); len(r["TriggerAuthentication"]) != 0 {
		t.Error("a TriggerAuthentication without SASL or TLS")
	}
}

// replayShards checks an Indexed replay Job: N completions, N in parallel,
// each pod --shard $(JOB_COMPLETION_INDEX)/N, a writable checkpoint on a
// volume and a read-only root filesystem.
func replayShards(t *testing.T, job obj, n int) {
	t.Helper()
	spec := get(job, "spec")
	if str(spec, "completionMode") != "Indexed" || get(spec, "completions") != n || get(spec, "parallelism") != n {
		t.Errorf("replay Job: mode %v, completions %v, parallelism %v; want Indexed, %d, %d",
			get(spec, "completionMode"), get(spec, "completions"), get(spec, "parallelism"), n, n)
	}
	c := get(spec, "template", "spec", "containers", 0)
	env := map[string]string{}
	for _, e := range list(c, "env") {
		env[str(e, "name")] = str(e, "value")
	}
	var args []string
	for _, a := range list(c, "args") {
		s := a.(string)
		for k, v := range env {
			s = strings.ReplaceAll(s, "$("+k+")", v)
		}
		args = append(args, s)
	}
	if len(args) == 0 || args[0] != "replay" {
		t.Fatalf("replay args = %v", args)
	}
	if want := fmt.Sprintf("--shard=$(JOB_COMPLETION_INDEX)/%d", n); !slices.Contains(args, want) {
		t.Errorf("replay args %v lack %s", args, want)
	}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--rate=") }) {
		t.Errorf("replay args %v set no --rate", args)
	}
	var checkpoint string
	for _, a := range args {
		if p, ok := strings.CutPrefix(a, "--checkpoint="); ok {
			checkpoint = p
		}
	}
	if !strings.Contains(checkpoint, "$(JOB_COMPLETION_INDEX)") {
		t.Errorf("checkpoint %q is not per shard", checkpoint)
	}
	var onVolume bool
	for _, m := range list(c, "volumeMounts") {
		onVolume = onVolume || strings.HasPrefix(checkpoint, str(m, "mountPath")+"/")
	}
	if !onVolume {
		t.Errorf("checkpoint %q is on no mounted volume", checkpoint)
	}
	if get(c, "securityContext", "readOnlyRootFilesystem") != true {
		t.Error("replay container's root filesystem is writable")
	}
	if l := str(get(spec, "template"), "metadata", "labels", "app.kubernetes.io/component"); l != "replay" {
		t.Errorf("replay pods labelled component=%q", l)
	}
}

func TestChartReplay(t *testing.T) {
	r := helmTemplate(t, "--set", "replay.enabled=true", "--set", "replay.source=s3://b/p", "--set", "replay.shards=6",
		"--set", "worker.enabled=false", "--set", "replay.checkpoint.existingClaim=replay-checkpoints")
	replayShards(t, r.named(t, "Job", "replay"), 6)
	for kind := range r {
		if kind != "Job" && kind != "ConfigMap" {
			t.Errorf("worker.enabled=false still renders a %s", kind)
		}
	}
	vols := fmt.Sprint(get(r.named(t, "Job", "replay"), "spec", "template", "spec", "volumes"))
	if !strings.Contains(vols, "replay-checkpoints") {
		t.Errorf("checkpoint claim not used: %s", vols)
	}
	// Nor the worker's alerts and dashboard, which a replay release given
	// the worker's values would otherwise install a second time.
	r = helmTemplate(t, "--set", "replay.enabled=true", "--set", "replay.source=s3://b/p", "--set", "worker.enabled=false",
		"--set", "prometheusRule.enabled=true", "--set", "dashboard.enabled=true")
	if len(r["PrometheusRule"]) != 0 || len(r["ConfigMap"]) != 1 {
		t.Errorf("worker.enabled=false renders %d PrometheusRules and %d ConfigMaps, want none and the settings", len(r["PrometheusRule"]), len(r["ConfigMap"]))
	}
	if _, err := helmTemplateErr(t, "--set", "castle.existingSecret=x", "--set", "replay.enabled=true"); err == nil {
		t.Error("a replay without a source rendered")
	}
	// Off by default.
	if r := helmTemplate(t); len(r["Job"]) != 0 {
		t.Error("the chart renders a replay Job by default")
	}
	// The worker's selectors never match replay pods.
	all := helmTemplate(t, "--set", "replay.enabled=true", "--set", "replay.source=s3://b/p")
	podLabels := get(all.named(t, "Job", "replay"), "spec", "template", "metadata", "labels").(obj)
	for _, sel := range []any{
		get(all.named(t, "Service", ""), "spec", "selector"),
		get(all.named(t, "PodDisruptionBudget", ""), "spec", "selector", "matchLabels"),
	} {
		if matches(sel.(obj), podLabels) {
			t.Errorf("selector %v matches the replay pods %v", sel, podLabels)
		}
	}
}

func matches(sel, labels obj) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestKustomizeComponents builds the base with every component and checks
// that they fit together.
func TestKustomizeComponents(t *testing.T) {
	// The replay Job gets the event map and the SASL credentials whether
	// its component comes before the others or after them.
	for _, order := range [][]string{{"prometheus-operator", "kafka-auth", "event-map", "replay"}, {"replay", "event-map", "kafka-auth", "prometheus-operator"}} {
		t.Run(strings.Join(order, ","), func(t *testing.T) { testKustomizeComponents(t, order) })
	}
}

func testKustomizeComponents(t *testing.T, order []string) {
	r := kustomizeBuild(t, order...)
	var settings obj
	for _, cm := range r["ConfigMap"] {
		if get(cm, "data", "KAFKA_TOPIC") != nil {
			settings = get(cm, "data").(obj)
		}
	}
	// kafka-auth: the worker's mechanism in KEDA's spelling.
	keda := map[string]string{"plain": "plaintext", "scram-sha-256": "scram_sha256", "scram-sha-512": "scram_sha512"}
	so := r.named(t, "ScaledObject", "")
	mech, _ := settings["KAFKA_SASL_MECHANISM"].(string)
	if got := str(so, "spec", "triggers", 0, "metadata", "sasl"); mech == "" || got != keda[mech] {
		t.Errorf("KAFKA_SASL_MECHANISM %q, KEDA sasl %q", mech, got)
	}
	if (settings["KAFKA_TLS"] == "true") != (str(so, "spec", "triggers", 0, "metadata", "tls") == "enable") {
		t.Errorf("KAFKA_TLS %v, KEDA tls %q", settings["KAFKA_TLS"], str(so, "spec", "triggers", 0, "metadata", "tls"))
	}
	if got, want := str(so, "spec", "triggers", 0, "authenticationRef", "name"), str(r.named(t, "TriggerAuthentication", ""), "metadata", "name"); got != want {
		t.Errorf("authenticationRef %q, TriggerAuthentication %q", got, want)
	}
	// event-map: EVENT_MAP is the mounted file.
	c := workerContainer(t, r.named(t, "Deployment", ""))
	var mounted bool
	for _, m := range list(c, "volumeMounts") {
		mounted = mounted || settings["EVENT_MAP"] == str(m, "mountPath")+"/event-map.yaml"
	}
	if !mounted {
		t.Errorf("EVENT_MAP %v is not the mounted event map", settings["EVENT_MAP"])
	}
	// The settings ConfigMap is generated with a hash, and the pods name it.
	name := str(get(c, "envFrom", 0), "configMapRef", "name")
	if !strings.HasPrefix(name, "castle-destination-") {
		t.Errorf("envFrom names %q, not the hashed settings ConfigMap", name)
	}
	// replay: shards in step, and the same settings as the worker.
	job := r.named(t, "Job", "replay")
	replayShards(t, job, get(job, "spec", "completions").(int))
	if got := str(get(job, "spec", "template", "spec", "containers", 0, "envFrom", 0), "configMapRef", "name"); got != name {
		t.Errorf("replay reads ConfigMap %q, the worker %q", got, name)
	}
	podLabels := get(job, "spec", "template", "metadata", "labels").(obj)
	if matches(get(r.named(t, "Service", ""), "spec", "selector").(obj), podLabels) {
		t.Error("the worker's Service selects the replay pods")
	}
	// The replay reads the same EVENT_MAP file and SASL credentials.
	volumes := func(pod any) map[string]string {
		m := map[string]string{}
		for _, v := range list(pod, "volumes") {
			m[str(v, "name")] = str(v, "configMap", "name")
		}
		return m
	}
	mounts := func(c any) map[string]string {
		m := map[string]string{}
		for _, v := range list(c, "volumeMounts") {
			m[str(v, "mountPath")] = str(v, "name")
		}
		return m
	}
	secrets := func(c any) map[string]string {
		m := map[string]string{}
		for _, e := range list(c, "env") {
			if ref := get(e, "valueFrom", "secretKeyRef"); ref != nil {
				m[str(e, "name")] = str(ref, "name") + "/" + str(ref, "key")
			}
		}
		return m
	}
	jc := get(job, "spec", "template", "spec", "containers", 0)
	dir := strings.TrimSuffix(settings["EVENT_MAP"].(string), "/event-map.yaml")
	wpod, jpod := get(r.named(t, "Deployment", ""), "spec", "template", "spec"), get(job, "spec", "template", "spec")
	if wv, jv := volumes(wpod)[mounts(c)[dir]], volumes(jpod)[mounts(jc)[dir]]; wv == "" || jv != wv {
		t.Errorf("EVENT_MAP's directory %s holds ConfigMap %q in the replay, %q in the worker", dir, jv, wv)
	}
	ws, js := secrets(c), secrets(jc)
	for _, k := range []string{"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "CASTLE_API_SECRET"} {
		if ws[k] == "" || js[k] != ws[k] {
			t.Errorf("%s from %q in the replay, %q in the worker", k, js[k], ws[k])
		}
	}
}

// TestChartAndCIValuesExist guards the file the CI renders the chart with.
func TestChartAndCIValuesExist(t *testing.T) {
	for _, f := range []string{"helm/ci/all-on.yaml", filepath.Join(chartDir, "Chart.yaml")} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
}

// TestChartMetricsPort: the worker listens on METRICS_ADDR and the probes,
// the Service and the scrape use service.port; a chart that let the two
// differ would have the probes restart every pod.
func TestChartMetricsPort(t *testing.T) {
	_, err := helmTemplateErr(t, "--set", "castle.existingSecret=x", "--set", "service.port=8080")
	if err == nil || !strings.Contains(err.Error(), "METRICS_ADDR") || !strings.Contains(err.Error(), "service.port") {
		t.Errorf("service.port=8080 alone: %v, want an error naming both settings", err)
	}
	if _, err := helmTemplateErr(t, "--set", "castle.existingSecret=x", "--set", "config.METRICS_ADDR=:8081"); err == nil {
		t.Error("config.METRICS_ADDR=:8081 alone rendered")
	}
	r := helmTemplate(t, "--set", "service.port=8080", "--set", "config.METRICS_ADDR=0.0.0.0:8080")
	c := workerContainer(t, r.named(t, "Deployment", ""))
	if p := get(c, "ports", 0, "containerPort"); p != 8080 {
		t.Errorf("containerPort %v, want 8080", p)
	}
}

// TestChartValuesFileTypes: what YAML reads as a boolean or a number in a
// values file still renders what the worker and Kubernetes take.
func TestChartValuesFileTypes(t *testing.T) {
	f := filepath.Join(t.TempDir(), "values.yaml")
	values := "config:\n  CASTLE_SCORING: on\n  ACCEPT_MOBILE: true\npodLabels:\n  version: 2\npodAnnotations:\n  sidecar.istio.io/inject: false\n" +
		"replay:\n  enabled: true\n  source: s3://b/p\n  podAnnotations:\n    a: 1\n"
	if err := os.WriteFile(f, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	r := helmTemplate(t, "-f", f)
	var settings obj
	for _, cm := range r["ConfigMap"] {
		if get(cm, "data", "KAFKA_TOPIC") != nil {
			settings = get(cm, "data").(obj)
		}
	}
	if settings["CASTLE_SCORING"] != "on" || settings["ACCEPT_MOBILE"] != "true" {
		t.Errorf("CASTLE_SCORING %v, ACCEPT_MOBILE %v; want on and true", settings["CASTLE_SCORING"], settings["ACCEPT_MOBILE"])
	}
	for _, w := range []obj{r.named(t, "Deployment", ""), r.named(t, "Job", "replay")} {
		meta := get(w, "spec", "template", "metadata")
		if v := get(meta, "labels", "version"); v != "2" {
			t.Errorf("%s: pod label version %#v, want the string 2", str(w, "kind"), v)
		}
		if v := get(meta, "annotations", "sidecar.istio.io/inject"); v != "false" {
			t.Errorf("%s: pod annotation sidecar.istio.io/inject %#v, want the string false", str(w, "kind"), v)
		}
	}
	if v := get(r.named(t, "Job", "replay"), "spec", "template", "metadata", "annotations", "a"); v != "1" {
		t.Errorf("replay.podAnnotations.a = %#v on the Job's pods, want the string 1", v)
	}
	if v := get(r.named(t, "Deployment", ""), "spec", "template", "metadata", "annotations", "a"); v != nil {
		t.Errorf("replay.podAnnotations reach the worker's pods: a = %v", v)
	}
}

// TestChartImage: by tag (the appVersion when empty), or pinned by digest;
// the version label stays a valid label value either way.
func TestChartImage(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		image, label string
	}{
		{nil, "ghcr.io/castle-destination/castle-destination:latest", "latest"},
		{[]string{"--set", "image.tag="}, "ghcr.io/castle-destination/castle-destination:0.1.0", "0.1.0"},
		{[]string{"--set", "image.digest=sha256:0123abcd"}, "ghcr.io/castle-destination/castle-destination@sha256:0123abcd", "latest"},
		{[]string{"--set", "image.tag=sha256:0123abcd"}, "ghcr.io/castle-destination/castle-destination:sha256:0123abcd", "sha256_0123abcd"},
	} {
		r := helmTemplate(t, append(tc.args, "--set", "replay.enabled=true", "--set", "replay.source=s3://b/p")...)
		for _, w := range []obj{r.named(t, "Deployment", ""), r.named(t, "Job", "replay")} {
			if got := str(get(w, "spec", "template", "spec", "containers", 0), "image"); got != tc.image {
				t.Errorf("%v: %s image %s, want %s", tc.args, str(w, "kind"), got, tc.image)
			}
			if got := str(w, "metadata", "labels", "app.kubernetes.io/version"); got != tc.label {
				t.Errorf("%v: %s version label %q, want %q", tc.args, str(w, "kind"), got, tc.label)
			}
		}
	}
}

// TestChartReplayPodPlacement: the replay's pods are placed as the
// worker's are (nodeSelector, affinity, tolerations).
func TestChartReplayPodPlacement(t *testing.T) {
	r := helmTemplate(t, "--set", "replay.enabled=true", "--set", "replay.source=s3://b/p",
		"--set", "nodeSelector.pool=batch", "--set", "tolerations[0].key=batch", "--set", "tolerations[0].operator=Exists",
		"--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=zone",
		"--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=Exists")
	wp, jp := get(r.named(t, "Deployment", ""), "spec", "template", "spec"), get(r.named(t, "Job", "replay"), "spec", "template", "spec")
	for _, f := range []string{"nodeSelector", "affinity", "tolerations"} {
		if get(wp, f) == nil || !reflect.DeepEqual(get(wp, f), get(jp, f)) {
			t.Errorf("%s: worker %v, replay %v", f, get(wp, f), get(jp, f))
		}
	}
}
