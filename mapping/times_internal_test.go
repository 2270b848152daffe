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
		// Ruby's Time#to_s (what JSON.generate writes for a Time without
		// ActiveSupport) and RFC 1123 (HTTP dates, JavaScript's
		// toUTCString).
		{"2024-03-01 10:00:00 +0100", utc("2024-03-01T09:00:00Z")},
		{"2024-03-01 10:00:00 UTC", utc("2024-03-01T10:00:00Z")},
		{"Fri, 01 Mar 2024 10:00:00 GMT", utc("2024-03-01T10:00:00Z")},
		{"Fri, 01 Mar 2024 10:00:00 +0100", utc("2024-03-01T09:00:00Z")},
		// RFC 3339 (section 5.6) allows a lowercase t and z.
		{"2024-01-02t03:04:05.123z", utc("2024-01-02T03:04:05.123Z")},
		{"2024-01-02t03:04:05+02:00", utc("2024-01-02T01:04:05Z")},
		{"2024-03-01 10:00:00 utc", time.Time{}}, // not RFC 3339's t or z
		{"2024-03-01 10:00:00 PST", time.Time{}}, // a zone named only: its offset unknown
		{"yesterday", time.Time{}},
		{"1704164645000", time.Time{}},
		{"1969-12-31T23:59:59Z", time.Time{}},
		// The years are bounded in UTC, the zone sent: a year past 9999
		// is no RFC 3339 time.
		{"9999-12-31T23:59:59-14:00", time.Time{}},
		{"1970-01-01T00:30:00+01:00", time.Time{}},
		{"9999-12-31T23:59:59+14:00", utc("9999-12-31T09:59:59Z")},
		{"", time.Time{}},
	} {
		got, ok := parseTime(c.in)
		if ok != !c.want.IsZero() || !got.Equal(c.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", c.in, got, ok, c.want)
		}
	}
}

// The event time is timestamp, else receivedAt corrected by the client's
// clock skew (sentAt - originalTimestamp), else originalTimestamp. A
// correction that leaves the years 1970-9999 is no time Castle can take:
// originalTimestamp then stands.
func TestEventTime(t *testing.T) {
	for _, c := range []struct {
		timestamp, orig, sent, recv string
		want                        string // "" for none
	}{
		{"", "2025-01-15T10:00:00Z", "2025-01-15T10:00:05Z", "2025-01-15T11:00:05Z", "2025-01-15T11:00:00Z"},
		{"2025-01-15T12:00:00Z", "2025-01-15T10:00:00Z", "2025-01-15T10:00:05Z", "2025-01-15T11:00:05Z", "2025-01-15T12:00:00Z"},
		{"", "2025-01-15T10:00:00Z", "", "2025-01-15T11:00:05Z", "2025-01-15T10:00:00Z"},
		{"", "", "2025-01-15T10:00:05Z", "2025-01-15T11:00:05Z", ""},
		// Past 9999: sentAt a year before originalTimestamp.
		{"", "9999-12-31T00:00:00Z", "9999-01-01T00:00:00Z", "9999-12-31T00:00:00Z", "9999-12-31T00:00:00Z"},
		// Before 1970, and a skew past what a time.Duration holds.
		{"", "1970-01-01T00:00:00Z", "9999-12-31T00:00:00Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"},
		{"", "9999-12-31T00:00:00Z", "1970-01-01T00:00:00Z", "9999-12-31T00:00:00Z", "9999-12-31T00:00:00Z"},
		{"", "9999-12-31T00:00:00Z", "1970-01-01T00:00:00Z", "2000-01-01T00:00:00Z", "9999-12-31T00:00:00Z"},
	} {
		msg := message{timestamp: c.timestamp, originalTimestamp: c.orig, sentAt: c.sent, receivedAt: c.recv}
		got := eventTime(&msg)
		var want time.Time
		if c.want != "" {
			want, _ = time.Parse(time.RFC3339, c.want)
		}
		if !got.Equal(want) {
			t.Errorf("eventTime(%+v) = %v, want %v", c, got, want)
		}
	}
}
