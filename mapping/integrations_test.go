package mapping_test

import (
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/mapping"
)

// A key written twice in different cases ("Castle" and "castle", "All" and
// "all") honours every opt-out among them, whatever their order.
func TestIntegrationKeysInEveryCaseHonourEachOptOut(t *testing.T) {
	m := mapping.New(mapping.Config{})
	for _, c := range []struct {
		integrations string
		dropped      bool
	}{
		{`{"Castle":true,"castle":false}`, true},
		{`{"castle":false,"Castle":true}`, true},
		{`{"CASTLE":true,"Castle":false}`, true},
		{`{"all":true,"All":false}`, true},
		{`{"All":false,"Castle":true,"castle":0}`, true},
		{`{"All":false,"Castle":true,"castle":{}}`, false},
		{`{"Castle":true,"castle":true}`, false},
		{`{"all":true,"All":true}`, false},
	} {
		raw := `{"type":"track","messageId":"m","userId":"u","event":"E","channel":"client","integrations":` + c.integrations +
			`,"context":{"library":{"name":"analytics.js"}}}`
		rs := m.Map(nil, []byte(raw), time.Now(), nil)
		if len(rs) != 1 {
			t.Fatalf("%s: %d results", c.integrations, len(rs))
		}
		got := rs[0].Action == mapping.Drop && rs[0].Reason == mapping.ReasonIntegrationDisabled
		if got != c.dropped {
			t.Errorf("%s: %v %s, want dropped as integration_disabled: %v", c.integrations, rs[0].Action, rs[0].Reason, c.dropped)
		}
	}
}
