package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/pipeline"
)

// secureTrack is a track message in Secure Mode: its userJwt names user and
// is signed with key.
func secureTrack(t *testing.T, id, user, key string) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"id": user, "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`{"type":"track","messageId":%q,"userId":%q,"event":"Clicked","channel":"client",`+
		`"integrations":{"Castle":{"userJwt":%q}},"context":{"ip":"203.0.113.9","library":{"name":"analytics.js","version":"2"}},`+
		`"timestamp":"2026-11-30T10:00:00Z"}`, id, user, tok)
}

// When every userJwt fails its signature check and Castle has accepted no
// event yet, the secret is as likely wrong as every token forged: delivery
// holds under auth, naming CASTLE_API_SECRET, and nothing is
// dead-lettered or acknowledged. Dead-lettering them would drain a topic of
// Secure Mode traffic (SPEC §5: a wrong secret holds).
func TestSignaturesFailingUnderAnUnconfirmedSecretHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, pipeline.Config{}, destination.Config{})
		defer r.stop()
		a := &acker{}
		in := make(chan pipeline.Record, 32)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.p.Run(ctx, in) }()
		for i := range 20 {
			in <- record(int64(i), secureTrack(t, fmt.Sprint("s-", i), fmt.Sprint("u", i), "the-sources-other-secret"), a)
		}
		time.Sleep(time.Minute)
		if l := r.letters.get(); len(l) != 0 {
			t.Errorf("%d dead letters while the secret is not known to be right", len(l))
		}
		if n := a.n.Load(); n != 0 {
			t.Errorf("%d records acknowledged", n)
		}
		if err := r.board.Ready(); err == nil || !strings.Contains(err.Error(), "auth") || !strings.Contains(err.Error(), "CASTLE_API_SECRET") {
			t.Errorf("Ready() = %v, want an auth hold naming CASTLE_API_SECRET", err)
		}
		cancel()
		<-done
		if n := a.n.Load(); n != 0 || len(r.letters.get()) != 0 {
			t.Errorf("stopped: %d acknowledged, %d dead letters; want none", n, len(r.letters.get()))
		}
	})
}

// Once Castle accepts an event, the secret is right: a userJwt that fails
// its signature check is a forged token, and is dead-lettered (the one
// read before that is, once Castle has accepted). A verified userJwt
// proves the secret too.
func TestForgedTokenDeadLetteredOnceTheSecretIsConfirmed(t *testing.T) {
	for _, confirm := range []string{"castle accepts an event", "a userJwt verifies"} {
		t.Run(confirm, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, pipeline.Config{}, destination.Config{})
				defer r.stop()
				a := &acker{}
				in := make(chan pipeline.Record, 32)
				done := make(chan error, 1)
				go func() { done <- r.p.Run(context.Background(), in) }()
				in <- record(0, secureTrack(t, "forged", "mallory", "not-the-secret"), a)
				time.Sleep(10 * time.Second)
				if l := r.letters.get(); len(l) != 0 {
					t.Fatalf("dead-lettered before the secret was confirmed")
				}
				if confirm == "a userJwt verifies" {
					r.srv.StartOutage(castleserver.Status(503)) // Castle accepts nothing: only the token can confirm
					in <- record(1, secureTrack(t, "good", "alice", secret), a)
				} else {
					in <- record(1, track("bob", 1), a)
				}
				time.Sleep(10 * time.Second)
				l := r.letters.get()
				if len(l) != 1 || l[0].MessageID != "forged" || l[0].Reason != "user_jwt_invalid" {
					t.Errorf("dead letters %+v, want the forged token's", l)
				}
				if err := r.board.Ready(); err != nil && strings.Contains(err.Error(), "userJwt") {
					t.Errorf("Ready() = %v once the secret is confirmed", err)
				}
				r.srv.EndOutage()
				close(in)
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if n := a.n.Load(); n != 2 {
					t.Errorf("%d of 2 records acknowledged", n)
				}
			})
		})
	}
}

// A secret Castle took and then refuses (rotated at Castle) is trusted no
// more: a userJwt signed with the new secret fails its check under the
// old one and holds with the rest, instead of being dead-lettered and its
// offset committed. And a token that verifies under a secret Castle
// refuses (one stray producer signing with it) proves nothing.
func TestSignaturesFailingWhileCastleRefusesTheSecretHold(t *testing.T) {
	for _, before := range []string{"castle took the secret", "a userJwt verified under it", "castle took the secret, through a wrapper"} {
		t.Run(before, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, pipeline.Config{}, destination.Config{})
				defer r.stop()
				if strings.HasSuffix(before, "wrapper") {
					// As replay --rate wraps the client: the pipeline looks
					// through the wrapper for the secret's state.
					var err error
					r.p, err = pipeline.New(pipeline.Config{Faults: r.board, DedupeSize: 100}, r.mapper, wrapper{r.castle},
						r.letters, zap.NewNop(), prometheus.NewRegistry())
					if err != nil {
						t.Fatal(err)
					}
				}
				a := &acker{}
				in := make(chan pipeline.Record, 32)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- r.p.Run(ctx, in) }()
				if strings.HasPrefix(before, "castle took the secret") {
					in <- record(0, track("bob", 1), a)
					time.Sleep(time.Second)
					if r.srv.Stats().Accepted != 1 {
						t.Fatal("Castle did not take the first event")
					}
					r.srv.SetSecret("rotated-at-castle")
					in <- record(1, track("bob", 2), a)
				} else {
					r.srv.SetSecret("rotated-at-castle")
					in <- record(0, track("bob", 1), a)
					time.Sleep(time.Second)
					in <- record(1, secureTrack(t, "stray", "carol", secret), a)
				}
				time.Sleep(time.Second) // Castle refuses: delivery holds under auth
				in <- record(2, secureTrack(t, "signed-with-the-new-secret", "alice", "rotated-at-castle"), a)
				time.Sleep(time.Minute)
				if l := r.letters.get(); len(l) != 0 {
					t.Errorf("%d dead letters while Castle refuses the secret (first: %s, %s)", len(l), l[0].MessageID, l[0].Reason)
				}
				if err := r.board.Ready(); err == nil || !strings.Contains(err.Error(), "auth") {
					t.Errorf("Ready() = %v, want an auth hold", err)
				}
				cancel()
				<-done
				if l := r.letters.get(); len(l) != 0 {
					t.Errorf("stopped: %d dead letters; want none", len(l))
				}
				if a.nacks.Load() == 0 {
					t.Error("nothing abandoned at the stop: the held token's record was done")
				}
			})
		})
	}
}

// wrapper hands events to the client it wraps, as replay's pacing does.
type wrapper struct{ d pipeline.Deliverer }

func (w wrapper) Submit(ctx context.Context, evs []destination.Event, settled func(int, destination.Result)) {
	w.d.Submit(ctx, evs, settled)
}

func (w wrapper) Unwrap() pipeline.Deliverer { return w.d }
