package harness_test

import (
	"reflect"
	"testing"

	"github.com/castle-destination/castle-destination/internal/harness"
)

func TestCountVerdicts(t *testing.T) {
	values := [][]byte{
		[]byte(`{"message_id":"a","endpoint":"risk","policy":{"action":"deny"},"signals":["high_activity_ip","new_device"]}`),
		[]byte(`{"message_id":"b","endpoint":"risk","policy":{"action":"allow"},"signals":["new_device"]}`),
		[]byte(`{"message_id":"c","endpoint":"filter","policy":{"action":"challenge"},"signals":["disposable_email"]}`),
		[]byte(`{"message_id":"d","endpoint":"filter"}`),
		[]byte(`{"message_id":"e","endpoint":"risk","policy":{"action":"review"},"signals":["new_device","disposable_email"]}`),
	}
	c, err := harness.CountVerdicts(values)
	if err != nil {
		t.Fatal(err)
	}
	want := harness.VerdictCounts{
		Actions: map[harness.EndpointAction]int{
			{Endpoint: "risk", Action: "deny"}: 1, {Endpoint: "risk", Action: "allow"}: 1, {Endpoint: "risk", Action: "none"}: 1,
			{Endpoint: "filter", Action: "challenge"}: 1, {Endpoint: "filter", Action: "none"}: 1,
		},
		Signals: map[string]int{"new_device": 3, "disposable_email": 2, "high_activity_ip": 1},
	}
	if !reflect.DeepEqual(c, want) || !c.Equal(want) || c.Total() != 5 {
		t.Fatalf("counts %+v, want %+v", c, want)
	}
	if got := c.ByEndpoint(); !reflect.DeepEqual(got, map[string]int{"risk": 3, "filter": 2}) {
		t.Errorf("by endpoint %v", got)
	}
	top := c.TopSignals(2)
	if !reflect.DeepEqual(top, []harness.SignalCount{{Signal: "new_device", Count: 3}, {Signal: "disposable_email", Count: 2}}) {
		t.Errorf("top 2 signals %v", top)
	}
	if n := len(c.TopSignals(5)); n != 3 {
		t.Errorf("top 5 of 3 signals: %d", n)
	}
	// Ties go by name.
	tie := harness.VerdictCounts{Signals: map[string]int{"b": 1, "a": 1, "c": 2, "zero": 0}}
	if got := tie.TopSignals(5); !reflect.DeepEqual(got, []harness.SignalCount{{Signal: "c", Count: 2}, {Signal: "a", Count: 1}, {Signal: "b", Count: 1}}) {
		t.Errorf("ties: %v", got)
	}
	// Equal ignores zero counts, and notices a difference.
	withZero := harness.VerdictCounts{Actions: map[harness.EndpointAction]int{{Endpoint: "risk", Action: "deny"}: 0}}
	if !withZero.Equal(harness.VerdictCounts{}) || c.Equal(harness.VerdictCounts{}) {
		t.Error("Equal")
	}

	for _, bad := range []string{`not json`, `{"message_id":"x"}`, `[]`} {
		if _, err := harness.CountVerdicts([][]byte{[]byte(bad)}); err == nil {
			t.Errorf("CountVerdicts(%s): no error", bad)
		}
	}
}
