package destination_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/destination"
)

func TestStatusClasses(t *testing.T) {
	tests := []struct {
		name         string
		scfg         castleserver.Config
		fault        *castleserver.Fault
		body         string // default: a valid body
		wantStatus   destination.Status
		wantAttempts int
		wantCode     int
		wantType     string // Castle error type, for Rejected
		wantMsg      string // substring of Castle's message, for Rejected
		wantClass    string // requests_total class of the first attempt
	}{
		{name: "204 delivered", wantStatus: destination.Delivered, wantAttempts: 1, wantCode: 204, wantClass: "2xx"},
		{name: "201 delivered", scfg: castleserver.Config{SuccessStatus: 201}, wantStatus: destination.Delivered, wantAttempts: 1, wantCode: 201, wantClass: "2xx"},
		{name: "200 delivered", scfg: castleserver.Config{SuccessStatus: 200}, wantStatus: destination.Delivered, wantAttempts: 1, wantCode: 200, wantClass: "2xx"},
		{name: "400 rejected", fault: ptr(castleserver.Status(400)), wantStatus: destination.Rejected, wantAttempts: 1, wantCode: 400, wantType: "bad_request", wantClass: "4xx"},
		{name: "422 rejected", fault: ptr(castleserver.Status(422)), wantStatus: destination.Rejected, wantAttempts: 1, wantCode: 422, wantType: "invalid_parameters", wantClass: "4xx"},
		{name: "408 retried", fault: ptr(castleserver.Status(408)), wantStatus: destination.Delivered, wantAttempts: 2, wantCode: 204, wantClass: "4xx"},
		{name: "429 retried", fault: ptr(castleserver.TooManyRequests("0")), wantStatus: destination.Delivered, wantAttempts: 2, wantCode: 204, wantClass: "429"},
		{name: "500 retried", fault: ptr(castleserver.Status(500)), wantStatus: destination.Delivered, wantAttempts: 2, wantCode: 204, wantClass: "5xx"},
		{name: "502 retried", fault: ptr(castleserver.Status(502)), wantStatus: destination.Delivered, wantAttempts: 2, wantCode: 204, wantClass: "5xx"},
		{name: "503 retried", fault: ptr(castleserver.Status(503)), wantStatus: destination.Delivered, wantAttempts: 2, wantCode: 204, wantClass: "5xx"},
		{name: "504 retried", fault: ptr(castleserver.Status(504)), wantStatus: destination.Delivered, wantAttempts: 2, wantCode: 204, wantClass: "5xx"},
		{name: "invalid body", body: `{"type":"$custom"}`, wantStatus: destination.Rejected, wantAttempts: 1, wantCode: 422, wantType: "invalid_parameters", wantMsg: "name", wantClass: "4xx"},
		{name: "not json", body: `{"type":`, wantStatus: destination.Rejected, wantAttempts: 1, wantCode: 400, wantType: "bad_request", wantClass: "4xx"},
		{name: "too large", scfg: castleserver.Config{MaxBodyBytes: 64}, body: `{"type":"$custom","name":"` + strings.Repeat("x", 100) + `"}`, wantStatus: destination.Rejected, wantAttempts: 1, wantCode: 413, wantType: "bad_request", wantClass: "4xx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startLoopback(t, tt.scfg, destination.Config{Retry: fastRetry})
			if tt.fault != nil {
				e.srv.FailNext(1, *tt.fault)
			}
			ev := event("u1", 1)
			if tt.body != "" {
				ev.Body = []byte(tt.body)
			}
			res := deliver(e.c, context.Background(), []destination.Event{ev})
			if len(res) != 1 {
				t.Fatalf("got %d results, want 1", len(res))
			}
			r := res[0]
			if r.Status != tt.wantStatus || r.Attempts != tt.wantAttempts || r.Code != tt.wantCode {
				t.Fatalf("result = %v attempts=%d code=%d err=%v; want %v attempts=%d code=%d",
					r.Status, r.Attempts, r.Code, r.Err, tt.wantStatus, tt.wantAttempts, tt.wantCode)
			}
			switch tt.wantStatus {
			case destination.Delivered:
				if r.Err != nil {
					t.Errorf("Err = %v, want nil", r.Err)
				}
				if got := e.srv.Stats().Accepted; got != 1 {
					t.Errorf("server accepted %d, want 1", got)
				}
			case destination.Rejected:
				var ae *destination.APIError
				if !errors.As(r.Err, &ae) {
					t.Fatalf("Err = %T %v, want *APIError", r.Err, r.Err)
				}
				if ae.StatusCode != tt.wantCode || ae.Type != tt.wantType || !strings.Contains(ae.Message, tt.wantMsg) || ae.Message == "" {
					t.Errorf("APIError = %+v, want code %d type %q message containing %q", ae, tt.wantCode, tt.wantType, tt.wantMsg)
				}
				if e.srv != nil && e.srv.Stats().Accepted != 0 {
					t.Errorf("server accepted a rejected event")
				}
			}
			if got := counter(t, e.reg, "castle_destination_castle_requests_total", "class", tt.wantClass); got < 1 {
				t.Errorf("requests_total{class=%q} = %v, want >= 1", tt.wantClass, got)
			}
			if got := counter(t, e.reg, "castle_destination_castle_events_total", "type", "track", "result", tt.wantStatus.String()); got != 1 {
				t.Errorf("events_total{result=%q} = %v, want 1", tt.wantStatus, got)
			}
			if tt.wantAttempts > 1 {
				if got := sumCounter(t, e.reg, "castle_destination_castle_retries_total"); got != float64(tt.wantAttempts-1) {
					t.Errorf("retries_total = %v, want %d", got, tt.wantAttempts-1)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// Once a batch is settled, the client keeps nothing of it: a user's lane
// (and its pacing state) outlives its events by seconds, and must not keep
// their bodies, or what the caller's settled function holds (a worker's
// records, with their raw input), alive meanwhile.
func TestSettledBatchesAreNotRetained(t *testing.T) {
	e := startLoopback(t, castleserver.Config{}, destination.Config{})
	var events []destination.Event
	for i, u := range []string{"a", "a", "a", "b", "", "", "c", "c"} {
		events = append(events, event(u, i))
	}
	var bodies []weak.Pointer[byte]
	for _, ev := range events {
		bodies = append(bodies, weak.Make(&ev.Body[0]))
	}
	held := make([]byte, 1<<20) // what the settled function holds
	heldPtr := weak.Make(&held[0])
	done := make(chan struct{})
	var left atomic.Int64
	left.Store(int64(len(events)))
	settled := func(held []byte) func(int, destination.Result) {
		return func(i int, r destination.Result) {
			if r.Status != destination.Delivered {
				t.Errorf("event %d: %v", i, r.Status)
			}
			held[i] = 1
			if left.Add(-1) == 0 {
				close(done)
			}
		}
	}(held)
	e.c.Submit(context.Background(), events, settled)
	<-done
	// Close stops the workers, whose stacks could still hold the last job
	// for a moment, and keeps the lanes.
	e.c.Close()
	if lanes, _ := e.c.PacedUsers(); lanes == 0 {
		t.Fatal("no lane left after delivery: the test would not catch a lane keeping its events")
	}
	events, held, settled = nil, nil, nil
	runtime.GC()
	runtime.GC()
	for i, p := range bodies {
		if p.Value() != nil {
			t.Errorf("event %d's body still alive after its batch was settled", i)
		}
	}
	if heldPtr.Value() != nil {
		t.Error("what the settled function holds is still alive after its batch was settled")
	}
}

// Castle's SDKs write the API's base URL with its version
// (https://api.castle.io/v1): CASTLE_API_URL copied from one must reach
// /v1/log, not /v1/v1/log (a 404 that holds delivery).
func TestURLWithCastleVersion(t *testing.T) {
	for _, suffix := range []string{"", "/", "/v1", "/v1/", "/v1//"} {
		t.Run(suffix, func(t *testing.T) {
			s := newServer(t, castleserver.Config{})
			ts := httptest.NewServer(s)
			t.Cleanup(func() { s.Close(); ts.Close() })
			c, _, _ := newClient(t, destination.Config{URL: ts.URL + suffix, Retry: fastRetry}, nil)
			t.Cleanup(func() { c.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res := deliver(c, ctx, []destination.Event{event("u1", 1)})
			if len(res) != 1 || res[0].Status != destination.Delivered {
				t.Fatalf("URL %s: results %+v, want one delivered", ts.URL+suffix, res)
			}
			if got := s.Stats().Accepted; got != 1 {
				t.Errorf("Castle accepted %d, want 1", got)
			}
		})
	}
}
