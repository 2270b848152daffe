package pipeline

import (
	"sync"
	"sync/atomic"

	"github.com/castle-destination/castle-destination/destination"
	"github.com/castle-destination/castle-destination/hold"
)

// secretTeller is a Deliverer that tells what Castle's answers say of the
// API secret (destination.Client).
type secretTeller interface {
	Secret() (destination.SecretState, <-chan struct{})
}

// secretTrust decides whether a userJwt whose signature fails under the
// API secret is forged, and so dead-lettered, or may fail only because the
// secret is wrong, and so holds (holdSuspect). The secret is trusted while
// Castle takes it (an event accepted since its last 401 or 403), or, before
// Castle has said either, once a userJwt verified under it. While Castle
// refuses it, nothing is trusted, whatever verified: a secret producers
// never signed with may verify a stray token.
type secretTrust struct {
	verified atomic.Bool // a userJwt verified: read on every verified token

	mu     sync.Mutex
	castle destination.SecretState
	ok     bool
	became chan struct{} // closed when the secret becomes trusted
	raised bool          // holdSuspect raised the auth hold
	faults Faults
}

func newSecretTrust(castle destination.SecretState, faults Faults) *secretTrust {
	t := &secretTrust{castle: castle, became: make(chan struct{}), faults: faults}
	t.updateLocked()
	return t
}

// updateLocked recomputes ok; t.mu is held.
func (t *secretTrust) updateLocked() {
	ok := t.castle == destination.SecretTaken || t.castle == destination.SecretUnknown && t.verified.Load()
	if ok == t.ok {
		return
	}
	t.ok = ok
	if !ok {
		t.became = make(chan struct{})
		return
	}
	close(t.became)
	if t.raised {
		t.raised = false
		if t.faults != nil {
			t.faults.Clear(hold.Auth)
		}
	}
}

// setCastle records what Castle's answers say of the secret.
func (t *secretTrust) setCastle(s destination.SecretState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.castle = s
	t.updateLocked()
}

// verify records a userJwt that verified under the secret.
func (t *secretTrust) verify() {
	if t.verified.Swap(true) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.updateLocked()
}

// trusted reports whether the secret is trusted, and, if not, returns a
// channel closed when it becomes so.
func (t *secretTrust) trusted() (bool, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ok, t.became
}

// suspect is told of a message held for a failed signature: until Castle
// has said anything of the secret, nothing else holds delivery, so it
// raises the auth hold itself (once, until trusted). While Castle refuses
// the secret, the client's own hold says so.
func (t *secretTrust) suspect() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ok || t.raised || t.castle != destination.SecretUnknown || t.faults == nil {
		return
	}
	t.raised = true
	t.faults.Raise(hold.Auth, "userJwt signatures do not verify under CASTLE_API_SECRET, and Castle has accepted no event with it yet: "+
		"the secret is wrong, or the sources sign userJwt with another one")
}
