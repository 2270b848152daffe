package deploy_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/castle-destination/castle-destination/config"
	"github.com/castle-destination/castle-destination/ops"
)

// obj is one decoded YAML or JSON document.
type obj = map[string]any

// get walks a path of map keys and list indexes ("spec", "containers", 0).
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(obj)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	l, _ := get(v, path...).([]any)
	return l
}

// readDocs decodes every YAML document of a file.
func readDocs(t *testing.T, path string) []obj {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeAll(t, path, b)
}

// manifests are the objects of the kustomize base, by kind: its resources
// and the ConfigMaps its generators make from env files (named without the
// hash kustomize adds).
type manifests struct {
	kustomization obj
	byKind        map[string][]obj
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	k := readDocs(t, "kustomization.yaml")
	if len(k) != 1 {
		t.Fatalf("kustomization.yaml: %d documents, want 1", len(k))
	}
	m := manifests{kustomization: k[0], byKind: map[string][]obj{}}
	for _, r := range list(k[0], "resources") {
		file, _ := r.(string)
		docs := readDocs(t, file)
		if len(docs) == 0 {
			t.Errorf("%s: no documents", file)
		}
		for _, d := range docs {
			for _, f := range []string{"apiVersion", "kind"} {
				if str(d, f) == "" {
					t.Errorf("%s: a document without %s", file, f)
				}
			}
			if str(d, "metadata", "name") == "" {
				t.Errorf("%s: %s without metadata.name", file, str(d, "kind"))
			}
			m.byKind[str(d, "kind")] = append(m.byKind[str(d, "kind")], d)
		}
	}
	for _, g := range list(k[0], "configMapGenerator") {
		envs := list(g, "envs")
		if len(envs) == 0 {
			continue
		}
		data := obj{}
		for _, e := range envs {
			maps.Copy(data, readEnvFile(t, e.(string)))
		}
		m.byKind["ConfigMap"] = append(m.byKind["ConfigMap"], obj{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": obj{"name": str(g, "name")},
			"data":     data,
		})
	}
	return m
}

// readEnvFile reads a kustomize env file: KEY=VALUE lines, # comments.
func readEnvFile(t *testing.T, path string) obj {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data := obj{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			t.Fatalf("%s:%d: %q is not KEY=VALUE", path, i+1, line)
		}
		if _, dup := data[k]; dup {
			t.Errorf("%s:%d: %s set twice", path, i+1, k)
		}
		data[k] = v
	}
	return data
}

// one returns the only object of a kind.
func (m manifests) one(t *testing.T, kind string) obj {
	t.Helper()
	if n := len(m.byKind[kind]); n != 1 {
		t.Fatalf("%d %s objects, want 1", n, kind)
	}
	return m.byKind[kind][0]
}

// envNames maps the environment variables config registers to their
// defaults, read from the usage text "(env NAME)" that Flags.Var appends to
// every flag with one.
func envNames(t *testing.T) map[string]string {
	t.Helper()
	var c config.Config
	f := config.NewFlags("run", io.Discard)
	c.RegisterRun(f)
	re := regexp.MustCompile(`\(env ([A-Z0-9_]+)\)$`)
	names := map[string]string{}
	f.FlagSet().VisitAll(func(fl *flag.Flag) {
		if m := re.FindStringSubmatch(fl.Usage); m != nil {
			names[m[1]] = fl.DefValue
		}
	})
	// Guard the extraction itself: the names the command-line contract
	// fixes must be found.
	for _, want := range []string{"KAFKA_BROKERS", "KAFKA_TOPIC", "KAFKA_GROUP_ID", "DLQ_TOPIC", "CASTLE_API_SECRET",
		"CASTLE_API_URL", "METRICS_ADDR", "LOG_LEVEL", "PAGE_TYPE", "SHUTDOWN_TIMEOUT"} {
		if _, ok := names[want]; !ok {
			t.Fatalf("env %s not found among the registered settings %v", want, names)
		}
	}
	return names
}

func TestKustomizationListsEveryFile(t *testing.T) {
	k := readDocs(t, "kustomization.yaml")[0]
	listed := map[string]bool{}
	for _, r := range list(k, "resources") {
		listed[r.(string)] = true
	}
	for _, g := range list(k, "configMapGenerator") {
		for _, f := range slices.Concat(list(g, "files"), list(g, "envs")) {
			listed[f.(string)] = true
		}
	}
	for f := range listed {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", f, err)
		}
	}
	var files []string
	for _, pattern := range []string{"*.yaml", "*.env", "grafana/*.json", "prometheus/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 7 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		if f == "kustomization.yaml" || strings.HasSuffix(f, "_test.yaml") {
			continue
		}
		if !listed[f] {
			t.Errorf("%s is not in kustomization.yaml (resources or configMapGenerator)", f)
		}
	}
	// Every file of a component is its kustomization's.
	comps, err := filepath.Glob("components/*/kustomization.yaml")
	if err != nil || len(comps) < 4 {
		t.Fatalf("components: %v %v", comps, err)
	}
	for _, c := range comps {
		dir := filepath.Dir(c)
		kc := readDocs(t, c)[0]
		if str(kc, "kind") != "Component" {
			t.Errorf("%s: kind %q, want Component", c, str(kc, "kind"))
		}
		listed := map[string]bool{"kustomization.yaml": true}
		for _, r := range list(kc, "resources") {
			listed[r.(string)] = true
		}
		for _, g := range list(kc, "configMapGenerator") {
			for _, f := range list(g, "files") {
				listed[f.(string)] = true
			}
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if !listed[e.Name()] {
				t.Errorf("%s/%s is not used by its kustomization.yaml", dir, e.Name())
			}
		}
	}
}

// secretSettings come from Secrets, never from the settings ConfigMap.
var secretSettings = map[string]bool{"CASTLE_API_SECRET": true, "KAFKA_SASL_PASSWORD": true}

func TestEnvNamesAreSettings(t *testing.T) {
	m := loadManifests(t)
	names := envNames(t)
	cm := m.one(t, "ConfigMap")
	data, _ := get(cm, "data").(obj)
	if len(data) == 0 {
		t.Fatal("ConfigMap has no data")
	}
	for k := range data {
		if _, ok := names[k]; !ok {
			t.Errorf("settings.env key %s is not a setting config registers", k)
		}
		if secretSettings[k] {
			t.Errorf("%s is in the settings; it belongs in a Secret", k)
		}
	}
	// Every setting is listed, so an operator sees them all in one place.
	for n := range names {
		if _, ok := data[n]; !ok && !secretSettings[n] {
			t.Errorf("setting %s is not in settings.env", n)
		}
	}
	for _, c := range list(m.one(t, "Deployment"), "spec", "template", "spec", "containers") {
		for _, e := range list(c, "env") {
			n := str(e, "name")
			if _, ok := names[n]; !ok {
				t.Errorf("container %s: env %s is not a setting config registers", str(c, "name"), n)
			}
		}
	}
}

func TestDeployment(t *testing.T) {
	m := loadManifests(t)
	dep := m.one(t, "Deployment")
	cm := m.one(t, "ConfigMap")
	pod := get(dep, "spec", "template")
	containers := list(pod, "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("%d containers, want 1", len(containers))
	}
	c := containers[0]

	if args := list(c, "args"); len(args) == 0 || args[0] != "run" {
		t.Errorf("args = %v, want [run ...]", args)
	}
	if str(c, "image") == "" {
		t.Error("no image")
	}

	// The metrics port is METRICS_ADDR's.
	addr := str(cm, "data", "METRICS_ADDR")
	if addr == "" {
		addr = ":9090" // config's default
	}
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("METRICS_ADDR %q: %v", addr, err)
	}
	metricsPort, _ := strconv.Atoi(portStr)
	ports := map[string]int{}
	for _, p := range list(c, "ports") {
		n, _ := get(p, "containerPort").(int)
		ports[str(p, "name")] = n
	}
	if !slices.Contains(slicesValues(ports), metricsPort) {
		t.Errorf("container ports %v do not include METRICS_ADDR's port %d", ports, metricsPort)
	}
	resolve := func(port any) int {
		switch p := port.(type) {
		case int:
			return p
		case string:
			return ports[p]
		}
		return 0
	}

	// Probes: liveness on /healthz, readiness on /readyz, both on the metrics port.
	for _, pr := range []struct{ probe, path string }{{"livenessProbe", "/healthz"}, {"readinessProbe", "/readyz"}} {
		h := get(c, pr.probe, "httpGet")
		if h == nil {
			t.Errorf("%s: no httpGet", pr.probe)
			continue
		}
		if got := str(h, "path"); got != pr.path {
			t.Errorf("%s path = %q, want %q", pr.probe, got, pr.path)
		}
		if got := resolve(get(h, "port")); got != metricsPort {
			t.Errorf("%s port resolves to %d, want METRICS_ADDR's %d", pr.probe, got, metricsPort)
		}
	}

	// The API secret comes from a Secret.
	var secretRef any
	for _, e := range list(c, "env") {
		if str(e, "name") == "CASTLE_API_SECRET" {
			secretRef = get(e, "valueFrom", "secretKeyRef")
			if get(e, "value") != nil {
				t.Error("CASTLE_API_SECRET has a literal value")
			}
		}
	}
	if str(secretRef, "name") == "" || str(secretRef, "key") == "" {
		t.Errorf("CASTLE_API_SECRET: secretKeyRef = %v, want name and key", secretRef)
	}

	// The ConfigMap is the container's environment.
	var fromCM bool
	for _, e := range list(c, "envFrom") {
		fromCM = fromCM || str(e, "configMapRef", "name") == str(cm, "metadata", "name")
	}
	if !fromCM {
		t.Errorf("container envFrom does not reference ConfigMap %s", str(cm, "metadata", "name"))
	}

	// Resources.
	for _, p := range [][]any{{"requests", "cpu"}, {"requests", "memory"}, {"limits", "memory"}} {
		if str(c, append([]any{"resources"}, p...)...) == "" {
			t.Errorf("resources.%s.%s not set", p[0], p[1])
		}
	}

	// Non-root.
	if get(pod, "spec", "securityContext", "runAsNonRoot") != true {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}

	// The kubelet waits longer than the worker's drain.
	shutdown := 25 * time.Second // config's default
	if s := str(cm, "data", "SHUTDOWN_TIMEOUT"); s != "" {
		if shutdown, err = time.ParseDuration(s); err != nil {
			t.Fatalf("SHUTDOWN_TIMEOUT %q: %v", s, err)
		}
	}
	grace, _ := get(pod, "spec", "terminationGracePeriodSeconds").(int)
	if time.Duration(grace)*time.Second <= shutdown+5*time.Second {
		t.Errorf("terminationGracePeriodSeconds %d is not comfortably above SHUTDOWN_TIMEOUT %v", grace, shutdown)
	}

	// The replica count belongs to the autoscaler.
	if get(dep, "spec", "replicas") != nil && len(m.byKind["ScaledObject"]) > 0 {
		t.Error("Deployment sets spec.replicas; the ScaledObject owns the replica count")
	}

	// Selectors match the pod labels.
	podLabels, _ := get(pod, "metadata", "labels").(obj)
	for _, s := range []struct {
		what string
		sel  any
	}{
		{"Deployment", get(dep, "spec", "selector", "matchLabels")},
		{"Service", get(m.one(t, "Service"), "spec", "selector")},
		{"PodDisruptionBudget", get(m.one(t, "PodDisruptionBudget"), "spec", "selector", "matchLabels")},
	} {
		sel, _ := s.sel.(obj)
		if len(sel) == 0 {
			t.Errorf("%s: empty selector", s.what)
		}
		for k, v := range sel {
			if podLabels[k] != v {
				t.Errorf("%s selector %s=%v does not match the pod labels %v", s.what, k, v, podLabels)
			}
		}
	}
	svcPort := get(m.one(t, "Service"), "spec", "ports", 0, "targetPort")
	if resolve(svcPort) != metricsPort {
		t.Errorf("Service targetPort %v does not resolve to the metrics port %d", svcPort, metricsPort)
	}
}

func slicesValues(m map[string]int) []int {
	var v []int
	for _, x := range m {
		v = append(v, x)
	}
	return v
}

// TestProbesAreServed serves the real ops endpoints and requests the paths
// the Deployment's probes name: both must answer 200 when healthy.
func TestProbesAreServed(t *testing.T) {
	m := loadManifests(t)
	c := get(m.one(t, "Deployment"), "spec", "template", "spec", "containers", 0)
	srv, err := ops.Listen("127.0.0.1:0", prometheus.NewRegistry(), ops.Check{Name: "test", Check: func() error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	for _, probe := range []string{"livenessProbe", "readinessProbe"} {
		path := str(c, probe, "httpGet", "path")
		resp, err := http.Get("http://" + srv.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: GET %s = %d, want 200", probe, path, resp.StatusCode)
		}
	}
}

func TestScaledObject(t *testing.T) {
	m := loadManifests(t)
	so := m.one(t, "ScaledObject")
	cm := m.one(t, "ConfigMap")
	if got, want := str(so, "spec", "scaleTargetRef", "name"), str(m.one(t, "Deployment"), "metadata", "name"); got != want {
		t.Errorf("scaleTargetRef.name = %q, want the Deployment %q", got, want)
	}
	minR, _ := get(so, "spec", "minReplicaCount").(int)
	maxR, _ := get(so, "spec", "maxReplicaCount").(int)
	if minR < 1 || maxR < minR {
		t.Errorf("replicas between %d and %d: want 1 <= min <= max", minR, maxR)
	}
	triggers := list(so, "spec", "triggers")
	if len(triggers) != 1 || str(triggers[0], "type") != "kafka" {
		t.Fatalf("triggers = %v, want one of type kafka", triggers)
	}
	md := get(triggers[0], "metadata")
	// KEDA metadata values are strings.
	for k, v := range md.(obj) {
		if _, ok := v.(string); !ok {
			t.Errorf("trigger metadata %s = %v (%T): KEDA wants a string", k, v, v)
		}
	}
	// Brokers, topic and group come from the Deployment's environment, so
	// they cannot disagree with the worker's.
	for _, p := range []struct{ meta, env string }{
		{"bootstrapServers", "KAFKA_BROKERS"}, {"topic", "KAFKA_TOPIC"}, {"consumerGroup", "KAFKA_GROUP_ID"},
	} {
		if v := str(md, p.meta); v != "" {
			t.Errorf("trigger %s = %q is a copy; read it with %sFromEnv: %s", p.meta, v, p.meta, p.env)
		}
		if got := str(md, p.meta+"FromEnv"); got != p.env {
			t.Errorf("trigger %sFromEnv = %q, want %s", p.meta, got, p.env)
		}
		if str(cm, "data", p.env) == "" {
			t.Errorf("ConfigMap has no %s for the trigger to read", p.env)
		}
	}
	// cooldownPeriod only applies when scaling to zero.
	if get(so, "spec", "cooldownPeriod") != nil && minR > 0 {
		t.Errorf("cooldownPeriod is set but minReplicaCount is %d: KEDA ignores it", minR)
	}
	if n, _ := get(so, "spec", "fallback", "failureThreshold").(int); n <= 0 {
		t.Error("no fallback: KEDA would not know what to do when it cannot read the lag")
	}
	if n, err := strconv.Atoi(str(md, "lagThreshold")); err != nil || n <= 0 {
		t.Errorf("lagThreshold %q is not a positive integer", str(md, "lagThreshold"))
	}
	// Replicas never exceed the partition count: members beyond it own no
	// partition.
	if got := str(md, "allowIdleConsumers"); got != "false" {
		t.Errorf("allowIdleConsumers = %q, want \"false\"", got)
	}
	if got, want := str(md, "offsetResetPolicy"), str(cm, "data", "KAFKA_START_OFFSET"); want != "" && got != want {
		t.Errorf("offsetResetPolicy = %q, want KAFKA_START_OFFSET %q", got, want)
	}
}

// query is one PromQL expression and where it comes from.
type query struct{ where, expr string }

// dashboardQueries returns every query of the dashboard: panel targets and
// template variables.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile("grafana/castle-destination.json")
	if err != nil {
		t.Fatal(err)
	}
	var d obj
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	for _, f := range []string{"title", "uid"} {
		if str(d, f) == "" {
			t.Errorf("dashboard without %s", f)
		}
	}
	var qs []query
	var panels []any
	for _, p := range list(d, "panels") {
		panels = append(panels, p)
		panels = append(panels, list(p, "panels")...) // collapsed rows
	}
	for _, p := range panels {
		if str(p, "type") == "row" {
			continue
		}
		targets := list(p, "targets")
		if len(targets) == 0 {
			t.Errorf("panel %q has no queries", str(p, "title"))
		}
		for _, tg := range targets {
			if str(tg, "expr") == "" {
				t.Errorf("panel %q: a target without expr", str(p, "title"))
			}
			qs = append(qs, query{"panel " + str(p, "title"), str(tg, "expr")})
		}
	}
	for _, v := range list(d, "templating", "list") {
		if q := str(v, "query", "query"); q != "" {
			qs = append(qs, query{"variable " + str(v, "name"), q})
		}
	}
	return qs
}

// alertQueries returns the expression of every alert rule, checking the
// fields each rule needs.
func alertQueries(t *testing.T) []query {
	t.Helper()
	docs := readDocs(t, "prometheus/alerts.yaml")
	var qs []query
	for _, g := range list(docs[0], "groups") {
		for _, r := range list(g, "rules") {
			name := str(r, "alert")
			if name == "" {
				t.Errorf("group %s: a rule without alert", str(g, "name"))
			}
			if str(r, "labels", "severity") == "" || str(r, "annotations", "summary") == "" {
				t.Errorf("alert %s: wants labels.severity and annotations.summary", name)
			}
			qs = append(qs, query{"alert " + name, str(r, "expr")})
		}
	}
	return qs
}

// externalMetrics are series the rules and the dashboard use that other
// exporters provide.
var externalMetrics = map[string]string{
	"up":                                                   "Prometheus",
	"container_memory_working_set_bytes":                   "cAdvisor (the kubelet)",
	"container_cpu_usage_seconds_total":                    "cAdvisor (the kubelet)",
	"kube_pod_status_ready":                                "kube-state-metrics",
	"kube_pod_container_status_restarts_total":             "kube-state-metrics",
	"kube_pod_container_status_last_terminated_reason":     "kube-state-metrics",
	"kube_pod_container_resource_limits":                   "kube-state-metrics",
	"kube_pod_container_resource_requests":                 "kube-state-metrics",
	"kube_deployment_status_replicas":                      "kube-state-metrics",
	"kube_deployment_status_replicas_ready":                "kube-state-metrics",
	"kube_horizontalpodautoscaler_status_current_replicas": "kube-state-metrics",
	"kube_horizontalpodautoscaler_status_desired_replicas": "kube-state-metrics",
	"kube_horizontalpodautoscaler_spec_max_replicas":       "kube-state-metrics",
}

// workerMetric reports whether a queried name is the worker's: its own
// (castle_destination_*) or its Go runtime and process collectors'.
func workerMetric(n string) bool {
	return strings.HasPrefix(n, "castle_destination_") || strings.HasPrefix(n, "go_") || strings.HasPrefix(n, "process_")
}

// TestQueriesUseWorkerMetrics checks that every metric the dashboard and the
// alerts query is the worker's (castle_destination_*) or a listed external
// one. metrics_test.go checks that the worker's actually exist.
func TestQueriesUseWorkerMetrics(t *testing.T) {
	qs := append(dashboardQueries(t), alertQueries(t)...)
	if len(qs) < 20 {
		t.Fatalf("only %d queries found", len(qs))
	}
	seen := map[string]bool{}
	for _, q := range qs {
		names := metricNames(q.expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", q.where, q.expr)
		}
		for _, n := range names {
			seen[n] = true
			if !workerMetric(n) && externalMetrics[n] == "" {
				t.Errorf("%s: metric %s is neither the worker's nor a listed external one", q.where, n)
			}
		}
	}
	// The panels operators asked for: throughput, drops and dead letters,
	// retries, latency, lag, in flight; memory, CPU, restarts, replicas and
	// up; systemic faults; verdicts.
	for _, want := range []string{
		"container_memory_working_set_bytes", "container_cpu_usage_seconds_total",
		"kube_pod_container_status_restarts_total", "kube_deployment_status_replicas", "up",
		"castle_destination_delivery_held", "castle_destination_verdicts_total",
		"castle_destination_signals_total", "castle_destination_scoring_fallbacks_total",
		"castle_destination_messages_consumed_total", "castle_destination_events_forwarded_total",
		"castle_destination_messages_dropped_total", "castle_destination_dead_letters_total",
		"castle_destination_castle_retries_total", "castle_destination_castle_request_duration_seconds_bucket",
		"castle_destination_consumer_lag", "castle_destination_in_flight_events",
	} {
		if !seen[want] {
			t.Errorf("no query uses %s", want)
		}
	}
}

// TestPodDisruptionBudget: drains evict unready pods too, or an outage of
// Castle (every pod unready) would block every node drain.
func TestPodDisruptionBudget(t *testing.T) {
	pdb := loadManifests(t).one(t, "PodDisruptionBudget")
	if got := str(pdb, "spec", "unhealthyPodEvictionPolicy"); got != "AlwaysAllow" {
		t.Errorf("unhealthyPodEvictionPolicy = %q, want AlwaysAllow", got)
	}
	if get(pdb, "spec", "minAvailable") != nil {
		t.Error("minAvailable blocks drains of a single replica; use maxUnavailable")
	}
}

// deployChoices are the settings whose settings.env value is a deployment
// choice rather than the binary's default, and why.
var deployChoices = map[string]string{
	"KAFKA_BROKERS":   "no default: the cluster's bootstrap service",
	"KAFKA_TOPIC":     "no default: the topic Segment writes",
	"KAFKA_CLIENT_ID": "names the deployment to the brokers",
}

// A value written out in settings.env (and so in the chart) is the
// binary's default unless it is a listed choice: a default changed in
// code must not stay pinned to its old value in every install (the chart
// once kept CASTLE_CONCURRENCY at 64, the adaptive limit's ceiling, after
// the default rose to 1024).
func TestSettingsAreTheDefaults(t *testing.T) {
	env := readEnvFile(t, "settings.env")
	defaults := envNames(t)
	for k, v := range env {
		def, ok := defaults[k]
		if !ok || v == "" || deployChoices[k] != "" {
			continue
		}
		if a, err := time.ParseDuration(fmt.Sprint(v)); err == nil {
			if b, err := time.ParseDuration(def); err == nil && a == b {
				continue
			}
		}
		if v != def {
			t.Errorf("settings.env %s=%s, but the binary's default is %q: write the default, leave it empty, or list it in deployChoices", k, v, def)
		}
	}
}
