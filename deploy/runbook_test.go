package deploy_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// runbookURL is where every alert's runbook_url points: docs/runbook.md of
// the repository, with the alert's section as the fragment.
const runbookURL = "https://github.com/castle-destination/castle-destination/blob/main/docs/runbook.md"

// runbookSections returns the body of each "## " section of
// docs/runbook.md by its GitHub anchor.
func runbookSections(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	var anchor string
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			anchor = githubAnchor(strings.TrimSpace(h))
			if _, dup := sections[anchor]; dup {
				t.Errorf("runbook: two sections with anchor %s", anchor)
			}
			sections[anchor] = ""
			continue
		}
		if anchor != "" {
			sections[anchor] += line
		}
	}
	return sections
}

var notAnchor = regexp.MustCompile(`[^a-z0-9 _-]`)

// githubAnchor is the fragment GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	return strings.ReplaceAll(notAnchor.ReplaceAllString(strings.ToLower(heading), ""), " ", "-")
}

func TestGithubAnchor(t *testing.T) {
	for in, want := range map[string]string{
		"CastleDestinationLagGrowing": "castledestinationlaggrowing",
		"What `class` means, 2xx/4xx": "what-class-means-2xx4xx",
	} {
		if got := githubAnchor(in); got != want {
			t.Errorf("githubAnchor(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAlertsHaveRunbooks: every alert's runbook_url resolves to a section of
// docs/runbook.md that says what it means, how to confirm it and how to fix
// it, and every alert section of the runbook belongs to an alert.
func TestAlertsHaveRunbooks(t *testing.T) {
	sections := runbookSections(t)
	alerts := map[string]bool{}
	for _, g := range list(readDocs(t, "prometheus/alerts.yaml")[0], "groups") {
		for _, r := range list(g, "rules") {
			name := str(r, "alert")
			alerts[githubAnchor(name)] = true
			url := str(r, "annotations", "runbook_url")
			base, frag, ok := strings.Cut(url, "#")
			if !ok || base != runbookURL {
				t.Errorf("alert %s: runbook_url %q is not %s#SECTION", name, url, runbookURL)
				continue
			}
			body, ok := sections[frag]
			if !ok {
				t.Errorf("alert %s: runbook_url fragment #%s is no heading of docs/runbook.md", name, frag)
				continue
			}
			if frag != githubAnchor(name) {
				t.Errorf("alert %s: runbook_url points at #%s, not at its own section", name, frag)
			}
			for _, part := range []string{"**Meaning.**", "**Confirm.**", "**Fix.**"} {
				if !strings.Contains(body, part) {
					t.Errorf("runbook section %s has no %s", name, part)
				}
			}
		}
	}
	if len(alerts) < 10 {
		t.Fatalf("only %d alerts found", len(alerts))
	}
	for anchor := range sections {
		if strings.HasPrefix(anchor, "castledestination") && !alerts[anchor] {
			t.Errorf("runbook section #%s has no alert", anchor)
		}
	}
}

// TestEveryAlertIsUnitTested: alerts_test.yaml has, for every alert, a case
// where it fires (promtool test rules runs them in CI).
func TestEveryAlertIsUnitTested(t *testing.T) {
	fires := map[string]bool{}
	named := map[string]bool{}
	for _, tc := range list(readDocs(t, "prometheus/alerts_test.yaml")[0], "tests") {
		for _, a := range list(tc, "alert_rule_test") {
			named[str(a, "alertname")] = true
			if len(list(a, "exp_alerts")) > 0 {
				fires[str(a, "alertname")] = true
			}
		}
	}
	for _, q := range alertQueries(t) {
		name := strings.TrimPrefix(q.where, "alert ")
		if !fires[name] {
			t.Errorf("alerts_test.yaml has no case where %s fires", name)
		}
		delete(named, name)
	}
	for n := range named {
		t.Errorf("alerts_test.yaml tests %s, which alerts.yaml does not define", n)
	}
}
