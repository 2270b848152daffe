package ops

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "castle_destination_test_total", Help: "t"})
	reg.MustRegister(c)
	c.Add(3)
	var consuming atomic.Bool
	s, err := Listen("127.0.0.1:0", reg,
		Check{Name: "kafka", Check: func() error {
			if !consuming.Load() {
				return errors.New("not a group member yet")
			}
			return nil
		}},
		Check{Name: "castle", Check: func() error { return nil }},
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	base := "http://" + s.Addr()

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "kafka: not a group member yet") {
		t.Errorf("/readyz before consuming = %d %q", code, body)
	}
	consuming.Store(true)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz when consuming = %d", code)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "castle_destination_test_total 3") {
		t.Errorf("/metrics = %d %q", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestListenBadAddr(t *testing.T) {
	if _, err := Listen("256.0.0.1:99999", prometheus.NewRegistry()); err == nil {
		t.Fatal("want an error for a bad address")
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	l, err := NewLogger("warn", "json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hidden")
	l.Warn("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"msg":"shown"`) {
		t.Errorf("log = %q", buf.String())
	}
	if _, err := NewLogger("loud", "json", &buf); err == nil {
		t.Error("want an error for a bad level")
	}
	if _, err := NewLogger("info", "xml", &buf); err == nil {
		t.Error("want an error for a bad format")
	}
}

// LOG_LEVEL and LOG_FORMAT are read in any case.
func TestNewLoggerIgnoresCase(t *testing.T) {
	for _, tc := range []struct{ level, format string }{{"WARN", "JSON"}, {"Warn", "json"}, {"warn", "Json"}} {
		var buf bytes.Buffer
		l, err := NewLogger(tc.level, tc.format, &buf)
		if err != nil {
			t.Errorf("NewLogger(%q, %q): %v", tc.level, tc.format, err)
			continue
		}
		l.Info("hidden")
		l.Warn("shown")
		if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"msg":"shown"`) {
			t.Errorf("NewLogger(%q, %q): log = %q", tc.level, tc.format, buf.String())
		}
	}
}

func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewBuildInfo("v1.2.3", "abc123", "go1.26.8"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "castle_destination_build_info" || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gathered %v, want one castle_destination_build_info series", mfs)
	}
	m := mfs[0].GetMetric()[0]
	if m.GetGauge().GetValue() != 1 {
		t.Errorf("build_info = %v, want 1", m.GetGauge().GetValue())
	}
	labels := map[string]string{}
	for _, lp := range m.GetLabel() {
		labels[lp.GetName()] = lp.GetValue()
	}
	if labels["version"] != "v1.2.3" || labels["commit"] != "abc123" || labels["goversion"] != "go1.26.8" || len(labels) != 3 {
		t.Errorf("labels = %v", labels)
	}
}
