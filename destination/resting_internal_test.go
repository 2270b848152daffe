package destination

import (
	"math/rand/v2"
	"testing"
	"time"
)

// restModel is what restTable must hold: restingPace by key, as put.
type restModel map[uint64]restingPace

// sameRest reports whether got, read from the table, is want as put at now:
// send times rounded up to the millisecond, a notBefore already passed
// forgotten.
func sameRest(got, want restingPace, now time.Duration) bool {
	for k := range want.sent {
		w, g := want.sent[k], got.sent[k]
		if (w == noSend) != (g == noSend) || g < w || g-w >= time.Millisecond {
			return false
		}
	}
	if want.notBefore <= now {
		return got.notBefore == 0
	}
	return got.notBefore == want.notBefore
}

// The table holds what a map would, through puts, takes, sweeps, growth,
// shrinking, and keys sharing a home slot.
func TestRestTableAgainstAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tab restTable
	model := restModel{}
	putAt := map[uint64]time.Duration{}
	now := 2 * time.Second // send times are never before the client's epoch
	key := func() uint64 {
		if rng.IntN(4) == 0 {
			// One of 64 keys whose home is the last slot at every size:
			// a probe run that wraps around to the front.
			return uint64(rng.IntN(64))<<32 | 0xffff_ffff
		}
		return uint64(rng.IntN(1<<14))<<1 | 1
	}
	for step := range 300_000 {
		now += time.Duration(rng.IntN(int(3 * time.Millisecond)))
		switch op := rng.IntN(1000); {
		case op < 500:
			k := key()
			r := restingPace{sent: [restSends]time.Duration{noSend, noSend}}
			r.sent[1] = now - time.Duration(rng.IntN(int(time.Second)))
			if rng.IntN(2) == 0 {
				r.sent[0] = r.sent[1] - time.Duration(rng.IntN(int(time.Second)))
			}
			if rng.IntN(20) == 0 {
				r.notBefore = now + time.Duration(rng.IntN(int(2*time.Second))) - time.Second
			}
			tab.put(k, r, now)
			model[k], putAt[k] = r, now
		case op < 997:
			k := key()
			got, ok := tab.take(k)
			want, in := model[k]
			if ok != in {
				t.Fatalf("step %d: take(%x) found %v, the map %v", step, k, ok, in)
			}
			if ok && !sameRest(got, want, putAt[k]) {
				t.Fatalf("step %d: take(%x) = %+v, put %+v", step, k, got, want)
			}
			delete(model, k)
		default:
			// Drop the users who sent once: about half.
			tab.sweep(func(r restingPace) bool { return r.sent[0] == noSend })
			for k, r := range model {
				if r.sent[0] == noSend {
					delete(model, k)
				}
			}
		}
		if tab.len() != len(model) {
			t.Fatalf("step %d: table holds %d, the map %d", step, tab.len(), len(model))
		}
	}
}

// After a burst of users, a sweep that leaves a quarter of the peak or
// less gives the room back, keeping every user left.
func TestRestTableShrinksAfterBurst(t *testing.T) {
	var tab restTable
	for i := range 10_000 {
		tab.put(uint64(i)<<1|1, restingPace{sent: [restSends]time.Duration{noSend, time.Duration(i) * time.Millisecond}}, 0)
	}
	big := len(tab.slots)
	tab.sweep(func(r restingPace) bool { return r.sent[1] < 7_000*time.Millisecond })
	if len(tab.slots) != big {
		t.Fatalf("3,000 of 10,000 left: slots %d, want %d kept", len(tab.slots), big)
	}
	tab.sweep(func(r restingPace) bool { return r.sent[1] < 7_600*time.Millisecond })
	if len(tab.slots) >= big || tab.len() != 2_400 {
		t.Fatalf("2,400 of 10,000 left: slots %d of %d, %d users", len(tab.slots), big, tab.len())
	}
	for i := 7_600; i < 10_000; i++ {
		r, ok := tab.take(uint64(i)<<1 | 1)
		if !ok || r.sent[1] != time.Duration(i)*time.Millisecond {
			t.Fatalf("user %d lost or changed: %v %+v", i, ok, r)
		}
	}
}

// Send times stay exact, rounded up to the millisecond, past the 49 days
// a uint32 of milliseconds holds; a time too old for any window is
// forgotten when the table moves its base.
func TestRestTableOutlivesItsMilliseconds(t *testing.T) {
	var tab restTable
	p := newPacer(DefaultUserRate())
	day := 24 * time.Hour
	tab.put(1, restingPace{sent: [restSends]time.Duration{noSend, time.Second}}, time.Second)
	for now := 2 * time.Second; now < 200*day; now += 7 * day {
		sent := now + 1500*time.Microsecond
		r := restingPace{sent: [restSends]time.Duration{sent - time.Second, sent}}
		tab.put(3, r, now+2*time.Millisecond)
		got, ok := tab.take(3)
		if !ok || got.sent[0] != sent-time.Second+time.Microsecond*500 || got.sent[1] != sent+500*time.Microsecond {
			t.Fatalf("at day %d: put %+v, took %v %+v", now/day, r, ok, got)
		}
		if p.idleRest(got, now+2*time.Millisecond) {
			t.Fatalf("at day %d: a user who sent 0.5 ms ago is idle", now/day)
		}
	}
	r, ok := tab.take(1)
	if !ok || r.sent[1] != noSend || !p.idleRest(r, 200*day) {
		t.Fatalf("a send 200 days old: %v %+v, want it forgotten", ok, r)
	}
}

// A window longer than resting users' milliseconds can keep is refused.
func TestUserRateWindowsAreBounded(t *testing.T) {
	for _, c := range []struct {
		u  UserRate
		ok bool
	}{
		{DefaultUserRate(), true},
		{UserRate{Windows: []RateWindow{{Requests: 1, Per: 24 * time.Hour}}}, true},
		{UserRate{Windows: []RateWindow{{Requests: 1, Per: 24*time.Hour + 1}}}, false},
		{UserRate{Windows: []RateWindow{{Requests: 1, Per: 24 * time.Hour}}, Slack: time.Millisecond}, false},
		{UserRate{Windows: []RateWindow{{Requests: 1, Per: 0}}}, false},
	} {
		if err := c.u.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: Validate() = %v, want ok %v", c.u, err, c.ok)
		}
	}
}
