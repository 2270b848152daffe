package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/mapping"
	"github.com/castle-destination/castle-destination/pipeline"
)

// An identify sets the user for that user's later events and no earlier
// ones (SPEC §3, §4), however the input falls into chunks: each of 3,000
// users sends a page, then an identify with an email and a Secure Mode
// token, then a track that carries neither. With --require-user-jwt, no
// track is dropped as user_jwt_missing and every track, no page, carries
// the email.
func TestIdentifyAppliesToLaterEventsOnly(t *testing.T) {
	testIdentifyOrder(t, pipeline.Config{})
}

func testIdentifyOrder(t *testing.T, cfg pipeline.Config) {
	const users = 3000
	in := make(chan pipeline.Record, 3*users)
	for i := range users {
		u := fmt.Sprint("u", i)
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"id": u, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		lib := `"channel":"client","context":{"library":{"name":"analytics.js"}}`
		in <- pipeline.Record{Value: fmt.Appendf(nil, `{"type":"page","messageId":"p-%s","anonymousId":"a-%s",%s}`, u, u, lib)}
		in <- pipeline.Record{Value: fmt.Appendf(nil, `{"type":"identify","messageId":"i-%s","userId":%q,"traits":{"email":"%s@example.com"},"integrations":{"Castle":{"userJwt":%q}},%s}`, u, u, u, tok, lib)}
		in <- pipeline.Record{Value: fmt.Appendf(nil, `{"type":"track","event":"E","messageId":"t-%s","userId":%q,%s}`, u, u, lib)}
	}
	close(in)
	var mu sync.Mutex
	var bad []string
	tracks := 0
	d := pipeline.DeliverFunc(func(_ context.Context, evs []destination.Event, settled func(int, destination.Result)) {
		for i, ev := range evs {
			var b struct {
				Type string
				User struct{ ID, Email string }
			}
			if err := json.Unmarshal(ev.Body, &b); err != nil {
				t.Error(err)
			}
			mu.Lock()
			switch {
			case b.Type == "$custom" && b.User.Email != b.User.ID+"@example.com":
				bad = append(bad, fmt.Sprintf("a track of %s with email %q", b.User.ID, b.User.Email))
			case b.Type == "$page" && b.User.Email != "":
				bad = append(bad, fmt.Sprintf("a page with the later identify's email %q", b.User.Email))
			}
			if b.Type == "$custom" {
				tracks++
			}
			mu.Unlock()
			settled(i, destination.Result{Status: destination.Delivered})
		}
	})
	cfg.DedupeSize, cfg.UserCacheSize = 1<<16, 1<<16
	m := mapping.New(mapping.Config{Secret: []byte(secret), RequireUserJWT: true})
	p, err := pipeline.New(cfg, m, d, nil, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if tracks != users {
		t.Errorf("%d of %d tracks sent: the others were dropped as user_jwt_missing", tracks, users)
	}
	if len(bad) > 0 {
		t.Errorf("%d events with another moment's user, e.g. %s", len(bad), bad[0])
	}
}
