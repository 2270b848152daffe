package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// metricNames returns the metric names an expression selects: PromQL, or a
// Grafana label_values(selector, label) variable query. Functions,
// aggregation operators, keywords, label matchers ({...}), ranges ([...]),
// strings, numbers, durations and Grafana $variables are not metric names.
// It is a scanner, not a parser: enough for the queries in this directory,
// whose syntax promtool checks separately.
func metricNames(expr string) []string {
	if s := strings.TrimSpace(expr); strings.HasPrefix(s, "label_values(") && strings.HasSuffix(s, ")") {
		inner := s[len("label_values(") : len(s)-1]
		if i := strings.LastIndexByte(inner, ','); i >= 0 && !strings.Contains(inner[i:], "}") {
			inner = inner[:i]
		}
		expr = inner
	}
	var names []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '{':
			i = skipGroup(expr, i, '{', '}')
		case c == '[':
			i = skipGroup(expr, i, '[', ']')
		case c == '$':
			i++
			for i < len(expr) && isIdent(expr[i]) {
				i++
			}
		case isDigit(c) || (c == '.' && i+1 < len(expr) && isDigit(expr[i+1])):
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\t' || expr[k] == '\n') {
				k++
			}
			next := byte(0)
			if k < len(expr) {
				next = expr[k]
			}
			switch {
			case labelListKeywords[strings.ToLower(word)]:
				if next == '(' {
					j = skipGroup(expr, k, '(', ')')
				}
			case next == '(', keywords[strings.ToLower(word)]:
				// A function call, an aggregation or a keyword.
			default:
				if !slices.Contains(names, word) {
					names = append(names, word)
				}
			}
			i = j
		default:
			i++
		}
	}
	return names
}

// labelListKeywords are followed by a parenthesised list of label names.
var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// keywords are the PromQL words that are not metric names and need not be
// followed by "(": aggregation operators (sum by (x) (...)), binary
// operators, modifiers and literals.
var keywords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
	"inf": true, "nan": true,
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdent(c byte) bool { return isIdentStart(c) || isDigit(c) }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// skipString returns the index after the string literal starting at i.
func skipString(s string, i int) int {
	q := s[i]
	for i++; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if q != '`' {
				i++
			}
		case q:
			return i + 1
		}
	}
	return i
}

// skipGroup returns the index after the bracket group opening at i,
// skipping string literals inside it.
func skipGroup(s string, i int, open, close byte) int {
	depth := 0
	for i < len(s) {
		switch s[i] {
		case '"', '\'', '`':
			i = skipString(s, i)
			continue
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return i
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`rate(a_total{job="x"}[5m])`, []string{"a_total"}},
		{`sum by (reason) (rate(a_total{namespace="$namespace", pod=~"$pod"}[$__rate_interval])) > 0`, []string{"a_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))`, []string{"h_bucket"}},
		{"sum by (namespace) (x) > 10000\nand\nderiv(sum by (namespace) (x)[15m:1m]) > 0", []string{"x"}},
		{`sum(rate(a{class!~"2xx|canceled"}[5m])) / sum(rate(b{class!="canceled"}[5m])) > 0.05`, []string{"a", "b"}},
		{`max by (namespace, pod) (kube_pod_status_ready{condition="true", pod=~"c-.*"}) == 0`, []string{"kube_pod_status_ready"}},
		{`a offset 1h + on(instance) group_left(version) b * 1e3`, []string{"a", "b"}},
		{`count(x) without (pod) or vector(0)`, []string{"x"}},
		{`{__name__="ignored"}`, nil},
		{`label_values(castle_destination_x_total, namespace)`, []string{"castle_destination_x_total"}},
		{`label_values(castle_destination_x_total{namespace="$namespace"}, pod)`, []string{"castle_destination_x_total"}},
		{`rate(a{l="}{[]\""}[1m])`, []string{"a"}},
	} {
		if got := metricNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// grafanaVariables are replaced by values of the same kind before a
// dashboard query is parsed as PromQL.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
)

// promQLRules turns expressions into a rule file that promtool checks, one
// recording rule each.
func promQLRules(qs []query) []byte {
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, q := range qs {
		expr := strings.TrimSpace(q.expr)
		if inner, ok := strings.CutPrefix(expr, "label_values("); ok {
			// A Grafana variable query: its selector is the PromQL part.
			inner = strings.TrimSuffix(inner, ")")
			if j := strings.LastIndexByte(inner, ','); j >= 0 && !strings.Contains(inner[j:], "}") {
				inner = inner[:j]
			}
			expr = inner
		}
		expr = grafanaVariables.Replace(expr)
		fmt.Fprintf(&b, "      - record: dashboard:query_%d\n        expr: %s\n", i, strconv.Quote(expr))
	}
	return []byte(b.String())
}

func promtoolCheck(t *testing.T, rules []byte) error {
	t.Helper()
	promtool := tool(t, "promtool")
	path := filepath.Join(t.TempDir(), "dashboard-rules.yaml")
	if err := os.WriteFile(path, rules, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := runTool(t, promtool, "check", "rules", path)
	return err
}

// TestDashboardQueriesParse has Prometheus's own parser (promtool) read
// every query of the dashboard.
func TestDashboardQueriesParse(t *testing.T) {
	qs := dashboardQueries(t)
	if err := promtoolCheck(t, promQLRules(qs)); err != nil {
		t.Errorf("promtool rejects a dashboard query: %v", err)
	}
	// The check can fail: a query with a missing parenthesis is caught.
	broken := []query{{"broken", `sum(rate(castle_destination_messages_consumed_total[$__rate_interval])`}}
	if err := promtoolCheck(t, promQLRules(broken)); err == nil {
		t.Error("promtool accepted a query with a missing parenthesis")
	}
}
