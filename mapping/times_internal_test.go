package mapping

import (
	"testing"
	"time"
)

// Times are read as analytics.js and Segment write them, and as a few
// libraries do besides; what is not a time stays unread.
func TestParseTime(t *testing.T) {
	utc := func(s string) time.Time {
		tt, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	for _, c := range []struct {
		in   string
		want time.Time // zero: not a time
	}{
		{"2024-01-02T03:04:05.123Z", utc("2024-01-02T03:04:05.123Z")},
		{"2024-01-02T03:04:05+02:00", utc("2024-01-02T01:04:05Z")},
		{"2024-01-02T03:04:05+0200", utc("2024-01-02T01:04:05Z")},
		{"2024-01-02T03:04:05.5-05", utc("2024-01-02T08:04:05.5Z")},
		{"2024-01-02T03:04Z", utc("2024-01-02T03:04:00Z")},
		{"2024-1-2T3:4:5Z", utc("2024-01-02T03:04:05Z")},
		{"2024-01-02 03:04:05", utc("2024-01-02T03:04:05Z")},
		{"2021-05-06", utc("2021-05-06T00:00:00Z")},
		{"2020-05-09 23:54:49.209808489 +0000 UTC m=+1.000000001", utc("2020-05-09T23:54:49.209808489Z")},
		{"2020-05-09 23:54:49 +0200 CEST", utc("2020-05-09T21:54:49Z")},
		{"yesterday", time.Time{}},
		{"1704164645000", time.Time{}},
		{"1969-12-31T23:59:59Z", time.Time{}},
		{"", time.Time{}},
	} {
		got, ok := parseTime(c.in)
		if ok != !c.want.IsZero() || !got.Equal(c.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", c.in, got, ok, c.want)
		}
	}
}
