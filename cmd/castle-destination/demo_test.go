package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/internal/harness"
)

// printedVerdicts is the verdicts table of the demo's output: per endpoint
// the expected and scored counts and the counts by action, and the top
// signals line.
type printedVerdicts struct {
	expected, scored map[string]int
	actions          map[harness.EndpointAction]int
	top              string
}

func parseVerdicts(t *testing.T, out string) printedVerdicts {
	t.Helper()
	p := printedVerdicts{expected: map[string]int{}, scored: map[string]int{}, actions: map[harness.EndpointAction]int{}}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "endpoint" {
			continue
		}
		if strings.Join(f, " ") != "endpoint expected scored allow challenge deny none" || i+3 >= len(lines) {
			t.Fatalf("verdicts table header %q", l)
		}
		for _, row := range lines[i+1 : i+3] {
			f := strings.Fields(row)
			if len(f) != 7 {
				t.Fatalf("verdicts table row %q", row)
			}
			n := make([]int, 6)
			for j := range n {
				v, err := strconv.Atoi(f[j+1])
				if err != nil {
					t.Fatalf("verdicts table row %q: %v", row, err)
				}
				n[j] = v
			}
			ep := f[0]
			p.expected[ep], p.scored[ep] = n[0], n[1]
			for j, a := range demoActions {
				p.actions[harness.EndpointAction{Endpoint: ep, Action: a}] = n[2+j]
			}
		}
		top, ok := strings.CutPrefix(lines[i+3], "top signals: ")
		if !ok {
			t.Fatalf("no top signals line after the table: %q", lines[i+3])
		}
		p.top = top
		return p
	}
	t.Fatalf("no verdicts table in the demo's output:\n%s", out)
	return p
}

// The demo runs with scoring on: its security events are scored on
// /v1/risk and /v1/filter, the summary prints the verdicts the server
// answered (by endpoint and action, and the top signals), and --verdicts
// writes exactly the records of the verdict topic, one per scored event.
func TestDemoScoresSecurityEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	env, err := harness.Start(harness.Options{Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.Close)
	dir := t.TempDir()
	s := demoSettings{messages: 2000, partitions: 3, seed: 1, logLevel: "error", timeout: time.Minute,
		verdicts: filepath.Join(dir, "verdicts.ndjson"), dump: filepath.Join(dir, "dump.ndjson")}
	var out bytes.Buffer
	if err := runDemo(t.Context(), env, s, time.Now(), zap.NewNop(), &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	stdout := out.String()

	// What the server received and answered.
	risk, filter := env.Castle.AcceptedOn(castleserver.RiskPath), env.Castle.AcceptedOn(castleserver.FilterPath)
	server, err := harness.CountResponses(env.Castle)
	if err != nil {
		t.Fatal(err)
	}
	if len(risk) < 30 || len(filter) < 10 {
		t.Fatalf("%d events scored on /v1/risk and %d on /v1/filter from 2,000 records", len(risk), len(filter))
	}
	for _, r := range env.Castle.AcceptedOn(castleserver.LogPath) {
		if r.Type != "$page" && r.Type != "$custom" {
			t.Errorf("a %s %s went to /v1/log: no security event of the demo should fall back", r.Type, r.Status)
		}
	}

	// The summary shows what the server answered.
	p := parseVerdicts(t, stdout)
	for ep, n := range map[string]int{"risk": len(risk), "filter": len(filter)} {
		if p.scored[ep] != n || p.expected[ep] != n {
			t.Errorf("%s: printed expected %d, scored %d; the server scored %d", ep, p.expected[ep], p.scored[ep], n)
		}
	}
	for k, n := range server.Actions {
		if p.actions[k] != n {
			t.Errorf("%s %s: printed %d, the server answered %d", k.Endpoint, k.Action, p.actions[k], n)
		}
	}
	total := 0
	for _, n := range p.actions {
		total += n
	}
	if total != server.Total() {
		t.Errorf("the table counts %d verdicts, the server answered %d", total, server.Total())
	}
	var top []string
	for _, sc := range server.TopSignals(5) {
		top = append(top, fmt.Sprintf("%s %d", sc.Signal, sc.Count))
	}
	if p.top != strings.Join(top, ", ") {
		t.Errorf("top signals printed %q, the server's %q", p.top, strings.Join(top, ", "))
	}
	// The stream makes the rules fire: more than one action, and the
	// signals of the demo's cohorts.
	actions := map[string]bool{}
	for k, n := range server.Actions {
		if n > 0 {
			actions[k.Action] = true
		}
	}
	if len(actions) < 2 {
		t.Errorf("every verdict has the same action: %v", server.Actions)
	}
	for _, sig := range []string{"new_device", "disposable_email", "multiple_accounts_per_device"} {
		if server.Signals[sig] == 0 {
			t.Errorf("no verdict names %s: %v", sig, server.Signals)
		}
	}

	// --verdicts: the verdict topic's records, one JSON object a line, one
	// per scored request.
	records, err := env.VerdictRecords(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(s.verdicts)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(file), "\n"), "\n")
	if len(lines) != len(records) || len(records) != len(risk)+len(filter) {
		t.Fatalf("--verdicts has %d lines, the verdict topic %d records, the server scored %d", len(lines), len(records), len(risk)+len(filter))
	}
	traces := map[string]string{} // trace id -> endpoint scored on
	for _, r := range append(risk, filter...) {
		id, _ := r.Properties["trace_id"].(string)
		traces[id] = strings.TrimPrefix(r.Path, "/v1/")
	}
	for i, l := range lines {
		if l != string(records[i]) {
			t.Fatalf("--verdicts line %d differs from the verdict topic's record %d", i+1, i)
		}
		var v struct {
			MessageID string `json:"message_id"`
			Endpoint  string
			Policy    struct{ Action string }
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("--verdicts line %d is not JSON: %v: %s", i+1, err, l)
		}
		if traces[v.MessageID] != v.Endpoint || v.Policy.Action == "" {
			t.Errorf("--verdicts line %d: %s", i+1, l)
		}
		delete(traces, v.MessageID)
	}
	if len(traces) != 0 {
		t.Errorf("%d scored events have no verdict record", len(traces))
	}
	if bytes.Contains(file, []byte("request_token")) || bytes.Contains(file, []byte("cst1.")) || bytes.Contains(file, []byte(harness.Secret)) {
		t.Error("a verdict record carries a request token or the secret")
	}

	// The samples name their endpoint and show no request token.
	for _, want := range []string{"POST /v1/log\n", "POST /v1/risk\n", `"request_token": "[redacted]"`, "the record written to the verdict topic"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	if strings.Contains(stdout, "cst1.") || strings.Contains(stdout, harness.Secret) {
		t.Error("the demo's output shows a request token or the secret")
	}

	// --dump: every accepted request with its path, and the verdict of a
	// scored one; request tokens redacted.
	f, err := os.Open(s.dump)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byPath, redacted := map[string]int{}, 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d struct {
			Path     string
			Body     json.RawMessage
			Response json.RawMessage
		}
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil || len(d.Body) == 0 || (d.Path != castleserver.LogPath) != (len(d.Response) > 0) {
			t.Fatalf("--dump line %q: %v", sc.Text(), err)
		}
		byPath[d.Path]++
		if strings.Contains(sc.Text(), "cst1.") || strings.Contains(sc.Text(), harness.Secret) {
			t.Fatalf("--dump line shows a request token or the secret: %q", sc.Text())
		}
		if strings.Contains(sc.Text(), `"request_token":"[redacted]"`) {
			redacted++
		}
	}
	if redacted < len(risk)+len(filter) {
		t.Errorf("--dump redacted %d request tokens; the scored requests alone carry %d", redacted, len(risk)+len(filter))
	}
	if byPath[castleserver.RiskPath] != len(risk) || byPath[castleserver.FilterPath] != len(filter) ||
		byPath[castleserver.LogPath] != len(env.Castle.AcceptedOn(castleserver.LogPath)) {
		t.Errorf("--dump by path %v; the server accepted %d, %d and %d", byPath, len(risk), len(filter), len(env.Castle.AcceptedOn(castleserver.LogPath)))
	}
}

// The demo's settings include --verdicts and its environment fallback.
func TestDemoHelpNamesVerdicts(t *testing.T) {
	r := command(t.Context(), nil, "demo", "-h")
	for _, want := range []string{"--verdicts", "DEMO_VERDICTS", "--dump", "DEMO_DUMP"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo -h lacks %s:\n%s", want, r.stdout)
		}
	}
}
