package castleserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
)

func TestRecordsByPath(t *testing.T) {
	c := newClock()
	s := newServer(t, castleserver.Config{Now: c.Now})
	tok := castleserver.NewRequestToken(c.Now(), "laptop")
	post(t, s, castleserver.LogPath, `{"type":"$custom","name":"Clicked","user":{"id":"u1"},"properties":{"n":1}}`)
	c.Advance(time.Second)
	risk := post(t, s, castleserver.RiskPath, ev(riskBody(tok), nil))
	post(t, s, castleserver.FilterPath, ev(filterBody(tok), nil))

	all := s.Accepted()
	if len(all) != 3 || all[0].Path != castleserver.LogPath || all[1].Path != castleserver.RiskPath || all[2].Path != castleserver.FilterPath {
		t.Fatalf("accepted %+v", all)
	}
	r := s.AcceptedOn(castleserver.RiskPath)
	if len(r) != 1 {
		t.Fatalf("AcceptedOn(risk): %d records", len(r))
	}
	got := r[0]
	if got.Seq != 2 || got.Type != "$login" || got.Status != "$succeeded" || got.UserID != "u1" ||
		!got.ReceivedAt.Equal(t0.Add(time.Second)) || !bytes.Equal(got.Response, risk.body) {
		t.Errorf("risk record %+v", got)
	}
	if all[0].Response != nil || all[0].Properties["n"] != 1.0 {
		t.Errorf("log record %+v", all[0])
	}
	if st := s.Stats(); st.ByPath[castleserver.LogPath] != 1 || st.ByPath[castleserver.RiskPath] != 1 || st.ByPath[castleserver.FilterPath] != 1 {
		t.Errorf("ByPath %v", st.ByPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.WaitFor(ctx, 3); err != nil {
		t.Errorf("WaitFor(3) after three: %v", err)
	}

	var buf bytes.Buffer
	if err := s.WriteNDJSON(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for i, l := range lines {
		var rec struct {
			Path     string          `json:"path"`
			Body     json.RawMessage `json:"body"`
			Response json.RawMessage `json:"response"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		if rec.Path != all[i].Path || !jsonEqual(rec.Body, all[i].Body) {
			t.Errorf("line %d: %s", i, l)
		}
		if (rec.Response != nil) != (i > 0) || (i > 0 && !jsonEqual(rec.Response, all[i].Response)) {
			t.Errorf("line %d response: %s", i, l)
		}
	}

	s.Reset()
	if len(s.Accepted()) != 0 || s.Stats().ByPath[castleserver.RiskPath] != 0 {
		t.Error("Reset kept records")
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}
