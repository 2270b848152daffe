package destination_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/destination"
)

// Castle's Risk answer echoes the event's properties: a verdict of an event
// with many long properties is far over the 64 KiB read of an error's
// body, and must still reach the caller whole, as JSON.
func TestLargeVerdictIsReadWhole(t *testing.T) {
	props := map[string]string{}
	for i := range 256 {
		props[strings.Repeat("k", 200)+string(rune('a'+i%26))+strings.Repeat("x", i)] = strings.Repeat("v", 1023)
	}
	verdict, err := json.Marshal(map[string]any{"risk": 0.1, "policy": map[string]any{"action": "allow"}, "properties": props})
	if err != nil {
		t.Fatal(err)
	}
	if len(verdict) < 200<<10 {
		t.Fatalf("verdict of %d bytes: not large enough to test", len(verdict))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(verdict)
	}))
	defer srv.Close()
	for _, proxied := range []bool{false, true} {
		cfg := destination.Config{URL: srv.URL, Retry: fastRetry}
		var hc *http.Client
		if proxied {
			hc = srv.Client() // net/http's transport, as behind a proxy
		}
		c, _, _ := newClient(t, cfg, hc)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rs := deliver(c, ctx, []destination.Event{{UserID: "u", Type: "$login", Body: []byte(`{}`),
			Score: &destination.Score{Endpoint: destination.Risk, Body: []byte(`{}`), Until: time.Now().Add(time.Minute)}}})
		cancel()
		c.Close()
		if rs[0].Status != destination.Delivered || !bytes.Equal(rs[0].Verdict, verdict) {
			t.Errorf("net/http transport %v: %v, verdict of %d bytes, want the %d sent", proxied, rs[0].Status, len(rs[0].Verdict), len(verdict))
		}
	}
}

// A server that echoes the request in its error puts the event's request
// token and headers in the error, which goes to logs and dead-letter
// headers: they read [redacted] there.
func TestEchoedTokensAreRedactedInErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(append([]byte("bad request: "), body...))
	}))
	defer srv.Close()
	c, _, _ := newClient(t, destination.Config{URL: srv.URL, Retry: fastRetry}, nil)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs := deliver(c, ctx, []destination.Event{{UserID: "u", Type: "$login",
		Body: []byte(`{"type":"$login","request_token":"tok-SECRET-1","context":{"headers":{"Cookie":"sid=SECRET-2","Authorization":"Bearer SECRET-3"}}}`)}})
	if rs[0].Status != destination.Rejected || rs[0].Err == nil {
		t.Fatalf("%v %v, want rejected with Castle's error", rs[0].Status, rs[0].Err)
	}
	if msg := rs[0].Err.Error(); strings.Contains(msg, "SECRET") || !strings.Contains(msg, "[redacted]") {
		t.Errorf("error %q", msg)
	}
}
