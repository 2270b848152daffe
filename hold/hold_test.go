package hold_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/castle-destination/castle-destination/hold"
	"github.com/castle-destination/castle-destination/internal/promtest"
)

func TestRaiseLogsOncePerMinuteAndClears(t *testing.T) {
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	core, logs := observer.New(zapcore.InfoLevel)
	reg := prometheus.NewRegistry()
	b, err := hold.New(zap.New(core), reg, hold.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(); err != nil {
		t.Fatalf("Ready() = %v before any fault", err)
	}
	msg := "CASTLE_API_SECRET was refused by Castle (401 unauthorized)"
	for range 100 { // a second's worth of refused requests
		b.Raise(hold.Auth, msg)
		now = now.Add(10 * time.Millisecond)
	}
	errs := logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(errs) != 1 || !strings.Contains(errs[0].Message, msg) {
		t.Fatalf("ERROR lines = %v, want one naming the setting", errs)
	}
	now = now.Add(time.Minute)
	b.Raise(hold.Auth, msg)
	errs = logs.FilterLevelExact(zapcore.ErrorLevel).All()
	if len(errs) != 2 || errs[1].ContextMap()["failures"] != int64(100) {
		t.Fatalf("after a minute: %d ERROR lines (%v), want a second one counting 100 failures", len(errs), errs[len(errs)-1].ContextMap())
	}
	if err := b.Ready(); err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "auth") {
		t.Errorf("Ready() = %v, want the held fault", err)
	}
	if got := promtest.Value(t, reg, "castle_destination_delivery_held", "class", hold.Auth); got != 1 {
		t.Errorf("delivery_held{auth} = %v, want 1", got)
	}
	if !b.Held(hold.Auth) || b.Held(hold.Route) {
		t.Errorf("Held: auth %v, route %v", b.Held(hold.Auth), b.Held(hold.Route))
	}
	b.Clear(hold.Auth)
	if err := b.Ready(); err != nil {
		t.Errorf("Ready() = %v after Clear", err)
	}
	if got := promtest.Value(t, reg, "castle_destination_delivery_held", "class", hold.Auth); got != 0 {
		t.Errorf("delivery_held{auth} = %v after Clear, want 0", got)
	}
	if n := logs.FilterMessageSnippet("delivery resumed").Len(); n != 1 {
		t.Errorf("%d resume lines, want 1", n)
	}
	b.Clear(hold.Auth) // not held: no second line
	if n := logs.FilterMessageSnippet("delivery resumed").Len(); n != 1 {
		t.Errorf("%d resume lines after a second Clear, want 1", n)
	}
	if got := promtest.Value(t, reg, "castle_destination_systemic_faults_total", "class", hold.Auth); got != 101 {
		t.Errorf("systemic_faults_total{auth} = %v, want 101", got)
	}
}

func TestReadyNamesEveryHeldFault(t *testing.T) {
	b, err := hold.New(nil, nil, hold.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Raise(hold.Route, "CASTLE_API_URL names no Castle API route (404 on /v1/v1/log)")
	b.Raise(hold.DeadLetterTopic, "DLQ_TOPIC cannot be written")
	err = b.Ready()
	if err == nil || !strings.Contains(err.Error(), "route: CASTLE_API_URL") || !strings.Contains(err.Error(), "dead_letter_topic: DLQ_TOPIC") {
		t.Errorf("Ready() = %v", err)
	}
	var nilBoard *hold.Board
	nilBoard.Raise(hold.Auth, "x")
	if nilBoard.Ready() != nil || nilBoard.Held(hold.Auth) {
		t.Error("a nil Board must hold nothing")
	}
}

// Holding names any held fault: each stops delivery (an output topic that
// cannot be written pauses the Castle client too).
func TestHolding(t *testing.T) {
	b, err := hold.New(nil, nil, hold.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c := b.Holding(); c != "" {
		t.Fatalf("Holding() = %q with nothing held", c)
	}
	b.Raise(hold.DeadLetterTopic, "DLQ_TOPIC cannot be written")
	if c := b.Holding(); c != hold.DeadLetterTopic {
		t.Errorf("Holding() = %q with the dead-letter topic held", c)
	}
	b.Raise(hold.Route, "CASTLE_API_URL names a host that does not exist")
	b.Clear(hold.DeadLetterTopic)
	if c := b.Holding(); c != hold.Route {
		t.Errorf("Holding() = %q, want %q", c, hold.Route)
	}
	b.Clear(hold.Route)
	if c := b.Holding(); c != "" {
		t.Errorf("Holding() = %q once cleared", c)
	}
	var none *hold.Board
	if c := none.Holding(); c != "" {
		t.Errorf("a nil Board holds %q", c)
	}
}
