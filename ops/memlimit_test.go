package ops

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestApplyMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	file := func(name, v string) fstest.MapFS { return fstest.MapFS{name: {Data: []byte(v)}} }
	for _, tc := range []struct {
		name     string
		cgroup   fstest.MapFS
		gomem    string
		want     int64 // 0: the limit is left alone
		wantNote string
	}{
		{"cgroup v2", file("memory.max", "268435456\n"), "", 268435456 * 9 / 10, "of the container's 256 MiB"},
		{"cgroup v2 unlimited", file("memory.max", "max\n"), "", 0, ""},
		{"cgroup v1", file("memory/memory.limit_in_bytes", "536870912\n"), "", 536870912 * 9 / 10, "of the container's 512 MiB"},
		{"cgroup v1 unlimited", file("memory/memory.limit_in_bytes", "9223372036854771712\n"), "", 0, ""},
		{"no cgroup", fstest.MapFS{}, "", 0, ""},
		{"garbage", file("memory.max", "lots"), "", 0, ""},
		{"GOMEMLIMIT wins", file("memory.max", "268435456"), "200MiB", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got int64
			note := ApplyMemoryLimit(func(k string) string {
				if k == "GOMEMLIMIT" {
					return tc.gomem
				}
				return ""
			}, tc.cgroup, func(n int64) int64 { got = n; return 0 })
			// Within a page of 90%: the float product may round.
			if d := got - tc.want; d < -4096 || d > 4096 {
				t.Errorf("set %d MiB, want %d MiB", got/mib, tc.want/mib)
			}
			if tc.want == 0 && got != 0 {
				t.Errorf("set %d, want the limit left alone", got)
			}
			if (note == "") != (tc.wantNote == "") || !strings.Contains(note, tc.wantNote) {
				t.Errorf("note %q, want one containing %q", note, tc.wantNote)
			}
		})
	}
}

func TestApplyGCPercent(t *testing.T) {
	for _, tc := range []struct {
		gogc string
		want int // 0: left alone
	}{
		{"", GCPercent},
		{"100", 0},
		{"off", 0},
	} {
		got := 0
		note := ApplyGCPercent(func(k string) string {
			if k == "GOGC" {
				return tc.gogc
			}
			return ""
		}, func(n int) int { got = n; return 100 })
		if got != tc.want {
			t.Errorf("GOGC=%q: set %d, want %d", tc.gogc, got, tc.want)
		}
		if (note != "") != (tc.want != 0) {
			t.Errorf("GOGC=%q: note %q", tc.gogc, note)
		}
	}
}
