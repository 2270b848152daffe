package harness

import (
	"context"
	"testing"
)

// A group no member has joined yet has committed nothing; polling it must
// read -1s, not fail the test that polls before the worker's first join.
func TestCommittedOfUnknownGroup(t *testing.T) {
	env, err := Start(Options{Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	got, err := env.Committed(context.Background(), "nobody-joined")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("offsets for %d partitions, want 3: %v", len(got), got)
	}
	for p, off := range got {
		if off != -1 {
			t.Errorf("partition %d: committed %d, want -1", p, off)
		}
	}
}
