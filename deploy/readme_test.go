package deploy_test

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// readmeMetrics returns the metric names the README's Metrics table lists,
// with the castle_destination_ prefix.
func readmeMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Metrics\n")
	if !ok {
		t.Fatal("README.md has no Metrics section")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var names []string
	for _, line := range strings.Split(section, "\n") {
		cell, ok := strings.CutPrefix(line, "| `")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(cell, "`")
		name, _, _ = strings.Cut(name, "{")
		names = append(names, "castle_destination_"+name)
	}
	if len(names) < 20 {
		t.Fatalf("README lists only %d metrics: %v", len(names), names)
	}
	return names
}

// TestReadmeListsEveryMetric compares the README's metric table with what
// worker.RegisterMetrics registers, both ways.
func TestReadmeListsEveryMetric(t *testing.T) {
	listed := readmeMetrics(t)
	registered := workerMetrics(t)
	var missing, extra []string
	for n := range registered {
		if strings.HasPrefix(n, "castle_destination_") && !slices.Contains(listed, n) {
			missing = append(missing, n)
		}
	}
	for _, n := range listed {
		if _, ok := registered[n]; !ok {
			extra = append(extra, n)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 {
		t.Errorf("registered but not in README.md's Metrics table: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("in README.md's Metrics table but not registered by worker.RegisterMetrics: %v", extra)
	}
}
