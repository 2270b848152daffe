package pipeline_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/pipeline"
)

// slowAnswers lets Castle process a request for "slowuser" at once (so it
// is accepted under the secret Castle holds at that moment) but delivers
// the answer late, as a slow network or a slow Risk call would.
type slowAnswers struct{ h http.Handler }

func (s slowAnswers) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	req.Body = io.NopCloser(bytes.NewReader(body))
	if !bytes.Contains(body, []byte("slowuser")) {
		s.h.ServeHTTP(w, req)
		return
	}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	time.Sleep(3 * time.Second)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// Castle rotates the secret while a request it accepted under the old one
// is still on its way back. A later request's 401 says Castle refuses the
// secret; the slow 2xx that comes after it says nothing of the secret
// now, so the userJwt signed with the new secret stays held rather than
// dead-lettered as forged (the last answer used to win).
func TestSlowAnswerFromBeforeARefusalDoesNotTrustTheSecret(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRigVia(t, pipeline.Config{DedupeSize: 1 << 10}, destination.Config{},
			func(h http.Handler) http.Handler { return slowAnswers{h} })
		defer r.stop()
		srv, castle, letters, p := r.srv, r.castle, r.letters, r.p
		a := &acker{}
		in := make(chan pipeline.Record, 8)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx, in) }()

		in <- record(0, track("slowuser", 1), a) // accepted by Castle now, answer comes in 3 s
		time.Sleep(500 * time.Millisecond)
		srv.SetSecret("rotated-at-castle")
		in <- record(1, track("bob", 1), a) // 401: Castle refuses the secret
		time.Sleep(500 * time.Millisecond)
		if s, _ := castle.Secret(); s != destination.SecretRefused {
			t.Fatalf("after the 401: secret state %v, want refused", s)
		}
		in <- record(2, secureTrack(t, "signed-with-the-new-secret", "alice", "rotated-at-castle"), a)
		time.Sleep(time.Minute)
		s, _ := castle.Secret()
		got := letters.get()
		cancel()
		<-done
		if len(got) != 0 {
			t.Errorf("%d dead letters while Castle refuses the secret (secret state now %v): %s %s",
				len(got), s, got[0].MessageID, got[0].Reason)
		}
	})
}
