package replay

import (
	"strings"
	"testing"
	"time"
)

// A progress line says how many users wait for Castle's per-user limit or
// a retry, so that a low rate while a heavy user is paced does not read as
// a hang; the final line does not.
func TestProgressLineNamesWaitingUsers(t *testing.T) {
	for _, tc := range []struct {
		waiting int
		term    bool
		want    string // "" for no mention
	}{
		{0, false, ""},
		{1, false, "(1 user waiting for Castle's per-user limit or a retry)"},
		{3000, false, "(3000 users waiting for Castle's per-user limit or a retry)"},
		{12, true, "(12 users waiting for Castle's per-user limit or a retry)"},
	} {
		r := report{term: tc.term, waiting: tc.waiting, rate: 0, sent: 18000, elapsed: 5 * time.Second,
			p: Progress{Unit: "files", Done: 0, Total: 2, Bytes: 10, Size: 100}}
		line := r.line()
		if tc.want == "" {
			if strings.Contains(line, "waiting") {
				t.Errorf("waiting %d: %q mentions waiting users", tc.waiting, line)
			}
			continue
		}
		if !strings.Contains(line, tc.want) {
			t.Errorf("waiting %d: %q, want it to contain %q", tc.waiting, line, tc.want)
		}
	}
}
