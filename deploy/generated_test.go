package deploy_test

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated copies of the alert rules and the dashboard")

// generated lists the files made from others, so the rules and the
// dashboard have one source each: prometheus/alerts.yaml and
// grafana/castle-destination.json.
func generated(t *testing.T) map[string][]byte {
	t.Helper()
	alerts, err := os.ReadFile("prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dashboard, err := os.ReadFile("grafana/castle-destination.json")
	if err != nil {
		t.Fatal(err)
	}
	var rule bytes.Buffer
	rule.WriteString(`# Generated from deploy/prometheus/alerts.yaml by
#   go test ./deploy -run TestGeneratedFiles -update
# Do not edit: edit alerts.yaml and regenerate.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: castle-destination
  labels:
    app.kubernetes.io/name: castle-destination
spec:
`)
	for _, line := range strings.SplitAfter(string(alerts), "\n") {
		if strings.TrimSpace(line) != "" {
			rule.WriteString("  ")
		}
		rule.WriteString(line)
	}
	return map[string][]byte{
		"components/prometheus-operator/prometheusrule.yaml":    rule.Bytes(),
		"helm/castle-destination/files/alerts.yaml":             alerts,
		"helm/castle-destination/files/castle-destination.json": dashboard,
	}
}

// TestGeneratedFiles checks that the copies are up to date; -update
// rewrites them.
func TestGeneratedFiles(t *testing.T) {
	for path, want := range generated(t) {
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (run go test ./deploy -run TestGeneratedFiles -update)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date: run go test ./deploy -run TestGeneratedFiles -update", path)
		}
	}
}
