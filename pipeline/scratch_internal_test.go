package pipeline

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/mapping"
)

// A mapper's scratch outlives the records it maps: once a record is
// mapped, its results must not keep the record's bytes (Result.Raw, the
// strings read from it), or an idle worker keeps the last envelopes it
// mapped, one for every slot of results a larger envelope once needed.
func TestPrepareKeepsNoRecordInScratch(t *testing.T) {
	p, err := New(Config{}, mapping.New(mapping.Config{Secret: []byte("s")}), nil, nil, zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var s scratch
	var items []item
	envelope := []byte(`{"batch":[` +
		`{"type":"screen","messageId":"m1","anonymousId":"a1"},` +
		`{"type":"screen","messageId":"m2","anonymousId":"a2"},` +
		`{"type":"screen","messageId":"m3","anonymousId":"a3"}]}`)
	single := []byte(`{"type":"screen","messageId":"m4","anonymousId":"a4"}`)
	for _, rec := range [][]byte{envelope, single} {
		p.prepare(Record{Value: rec}, &s, &items)
	}
	if cap(s.results) < 3 {
		t.Fatalf("the scratch has room for %d results, want the envelope's 3", cap(s.results))
	}
	kept := 0
	for _, r := range s.results[:cap(s.results)] {
		if r.Raw != nil || r.MessageID != "" {
			kept++
		}
	}
	if kept > 0 {
		t.Fatalf("after mapping, the scratch (room for %d results) still points into mapped records from %d results", cap(s.results), kept)
	}
}
