package castleserver_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/castleserver"
)

// login is a /v1/risk login of user on device with status.
func login(user, device, status string, at time.Time) string {
	return ev(riskBody(castleserver.NewRequestToken(at, device)), map[string]any{
		"status": status, "user": map[string]any{"id": user, "email": user + "@example.com"},
	})
}

func wantVerdict(t *testing.T, v verdict, action string, risk float64, signals ...string) {
	t.Helper()
	got := v.signalNames()
	slices.Sort(got)
	slices.Sort(signals)
	if !slices.Equal(got, signals) {
		t.Errorf("signals %v, want %v", got, signals)
	}
	if v.Policy.Action != action || v.Risk != risk {
		t.Errorf("action %s risk %v, want %s %v", v.Policy.Action, v.Risk, action, risk)
	}
}

func TestNewDevice(t *testing.T) {
	c := newClock()
	s := newServer(t, castleserver.Config{Now: c.Now, RateLimitOff: true})
	risk := func(user, device, status string) verdict {
		t.Helper()
		return parseVerdict(t, post(t, s, castleserver.RiskPath, login(user, device, status, c.Now())))
	}
	// A device is new until the user succeeds on it.
	wantVerdict(t, risk("ann", "laptop", "$failed"), "allow", 0.45, "new_device")
	wantVerdict(t, risk("ann", "laptop", "$succeeded"), "allow", 0.45, "new_device")
	wantVerdict(t, risk("ann", "laptop", "$succeeded"), "allow", 0.05)
	wantVerdict(t, risk("ann", "laptop", "$failed"), "allow", 0.05)
	// Another device, another user on the same device.
	wantVerdict(t, risk("ann", "phone", "$succeeded"), "allow", 0.45, "new_device")
	wantVerdict(t, risk("bob", "laptop", "$succeeded"), "allow", 0.45, "new_device")
	// Filter knows no user's devices: never new_device.
	v := parseVerdict(t, post(t, s, castleserver.FilterPath, ev(filterBody(castleserver.NewRequestToken(c.Now(), "kiosk")), nil)))
	wantVerdict(t, v, "allow", 0.05)
}

func TestDisposableEmail(t *testing.T) {
	c := newClock()
	noBurst := castleserver.ScoringConfig{IPBurst: castleserver.Limit{Requests: 1000, Per: time.Second}}
	s := newServer(t, castleserver.Config{Now: c.Now, RateLimitOff: true, Scoring: noBurst})
	for i, tc := range []struct {
		email string
		want  bool
	}{
		{"a@mailinator.com", true},
		{"a@MAILINATOR.com", true},
		{"a@eu.mailinator.com", true},
		{"a@mailinator.com.", true},
		{"a@notmailinator.com", false},
		{"a@example.com", false},
		{"mailinator.com", false},
		{"", false},
	} {
		// Each on a device of its own, succeeded twice, so only the email counts.
		dev := fmt.Sprint("dev-", i)
		user := map[string]any{"id": fmt.Sprint("u", i), "email": tc.email}
		body := ev(riskBody(castleserver.NewRequestToken(t0, dev)), map[string]any{"user": user})
		post(t, s, castleserver.RiskPath, body)
		v := parseVerdict(t, post(t, s, castleserver.RiskPath, body))
		if tc.want {
			wantVerdict(t, v, "challenge", 0.6, "disposable_email")
		} else {
			wantVerdict(t, v, "allow", 0.05)
		}
		// On /v1/filter the submitted email counts.
		fb := ev(filterBody(castleserver.NewRequestToken(t0, "f"+dev)), map[string]any{"params": map[string]any{"email": tc.email}})
		got := parseVerdict(t, post(t, s, castleserver.FilterPath, fb)).signalNames()
		if slices.Contains(got, "disposable_email") != tc.want {
			t.Errorf("filter %q: signals %v", tc.email, got)
		}
	}

	// The list is configurable.
	s2 := newServer(t, castleserver.Config{Now: c.Now, Scoring: castleserver.ScoringConfig{DisposableDomains: []string{"throwaway.test"}}})
	fb := ev(filterBody(castleserver.NewRequestToken(t0, "x")), map[string]any{"params": map[string]any{"email": "a@throwaway.test"}})
	if got := parseVerdict(t, post(t, s2, castleserver.FilterPath, fb)).signalNames(); !slices.Equal(got, []string{"disposable_email"}) {
		t.Errorf("configured domain: signals %v", got)
	}
}

func TestMultipleAccountsPerDevice(t *testing.T) {
	c := newClock()
	s := newServer(t, castleserver.Config{Now: c.Now, RateLimitOff: true})
	// Anonymous failed logins for three emails from one device: the third
	// is the third account on it.
	for i, email := range []string{"a@example.com", "B@example.com", "b@example.com", "c@example.com"} {
		fb := ev(filterBody(castleserver.NewRequestToken(t0, "shared")), map[string]any{"params": map[string]any{"email": email}})
		v := parseVerdict(t, post(t, s, castleserver.FilterPath, fb))
		if want := i >= 3; slices.Contains(v.signalNames(), "multiple_accounts_per_device") != want {
			t.Errorf("attempt %d (%s): signals %v, want multiple_accounts_per_device %v", i, email, v.signalNames(), want)
		}
	}
	// Users logging in on the shared device count as accounts too.
	v := parseVerdict(t, post(t, s, castleserver.RiskPath, login("dan", "shared", "$succeeded", t0)))
	wantVerdict(t, v, "challenge", 0.6, "new_device", "multiple_accounts_per_device")
	if v.Scores["account_abuse"].Score != 0.5 || v.Scores["account_takeover"].Score != 0.6 || v.Scores["bot"].Score != 0.05 {
		t.Errorf("scores %+v", v.Scores)
	}
	// With a disposable email too: deny.
	body := ev(riskBody(castleserver.NewRequestToken(t0, "shared")), map[string]any{"user": map[string]any{"id": "eve", "email": "eve@yopmail.com"}})
	v = parseVerdict(t, post(t, s, castleserver.RiskPath, body))
	wantVerdict(t, v, "deny", 0.99, "new_device", "multiple_accounts_per_device", "disposable_email")
}

func TestHighActivityIP(t *testing.T) {
	c := newClock()
	s := newServer(t, castleserver.Config{Now: c.Now, RateLimitOff: true,
		Scoring: castleserver.ScoringConfig{IPBurst: castleserver.Limit{Requests: 5, Per: 10 * time.Second}}})
	burst := func(ip string, i int) verdict {
		fb := ev(filterBody(castleserver.NewRequestToken(c.Now(), fmt.Sprint("d", i))), map[string]any{
			"params":  map[string]any{"email": fmt.Sprintf("p%d@example.com", i)},
			"context": map[string]any{"ip": ip, "headers": headers},
		})
		return parseVerdict(t, post(t, s, castleserver.FilterPath, fb))
	}
	for i := range 5 {
		v := burst("81.2.69.160", i)
		if i < 4 {
			wantVerdict(t, v, "allow", 0.05)
		} else {
			wantVerdict(t, v, "deny", 0.85, "high_activity_ip")
		}
		c.Advance(time.Second)
	}
	// Another IP is not affected.
	wantVerdict(t, burst("81.2.69.161", 9), "allow", 0.05)
	// The window slides: 10 s after the first request, the other four
	// are still in it.
	c.Advance(5 * time.Second)
	wantVerdict(t, burst("81.2.69.160", 10), "deny", 0.85, "high_activity_ip")
	c.Advance(time.Minute)
	wantVerdict(t, burst("81.2.69.160", 11), "allow", 0.05)
}

// TestDeviceFingerprint: the verdict's device is the token's device, or
// the User-Agent and IP for a token without one.
func TestDeviceFingerprint(t *testing.T) {
	c := newClock()
	s := newServer(t, castleserver.Config{Now: c.Now, RateLimitOff: true})
	fp := func(device, ua, ip string) string {
		b := ev(riskBody(castleserver.NewRequestToken(t0, device)), map[string]any{
			"context": map[string]any{"ip": ip, "headers": map[string]any{"user-agent": ua}},
		})
		return parseVerdict(t, post(t, s, castleserver.RiskPath, b)).Device.Fingerprint
	}
	a := fp("laptop", "UA1", "81.2.69.142")
	if a != castleserver.DeviceFingerprint("laptop") || len(a) != 22 {
		t.Errorf("fingerprint %q, want DeviceFingerprint(laptop) = %q", a, castleserver.DeviceFingerprint("laptop"))
	}
	if b := fp("laptop", "UA2", "81.2.69.143"); b != a {
		t.Errorf("same device, other UA and IP: %q != %q", b, a)
	}
	if fp("phone", "UA1", "81.2.69.142") == a {
		t.Error("another device has the same fingerprint")
	}
	x, y, z := fp("", "UA1", "81.2.69.142"), fp("", "UA1", "81.2.69.142"), fp("", "UA2", "81.2.69.142")
	if x != y || x == z || x == a || x == "" {
		t.Errorf("UA+IP fingerprints: %q %q %q", x, y, z)
	}
}

func TestVerdictShape(t *testing.T) {
	c := newClock()
	s := newServer(t, castleserver.Config{Now: c.Now, RateLimitOff: true})
	a := post(t, s, castleserver.RiskPath, ev(riskBody(castleserver.NewRequestToken(t0, "laptop")), map[string]any{"created_at": "2026-11-30T09:59:58.5Z"}))
	v := parseVerdict(t, a)
	if v.Type != "$login" || v.Status != "$succeeded" || v.Endpoint != castleserver.RiskPath {
		t.Errorf("type/status/endpoint: %s", a.body)
	}
	if len(v.ID) != 22 || v.Policy.Name == "" || v.Policy.ID == "" || v.Policy.RevisionID == "" || v.Device.Token == "" {
		t.Errorf("id, policy or device missing: %s", a.body)
	}
	if len(v.Scores) != 3 {
		t.Errorf("scores %v, want account_abuse, account_takeover, bot", v.Scores)
	}
	if !bytes.Contains(a.body, []byte(`"name":"Allow risk < 0.50"`)) {
		t.Errorf("policy name HTML-escaped or missing: %s", a.body)
	}
	if !bytes.Contains(a.body, []byte(`"created_at":"2026-11-30T09:59:58.500Z"`)) {
		t.Errorf("created_at not the event's: %s", a.body)
	}
	b := parseVerdict(t, post(t, s, castleserver.FilterPath, ev(filterBody(castleserver.NewRequestToken(t0, "x")), nil)))
	if b.ID == v.ID || b.Endpoint != castleserver.FilterPath {
		t.Errorf("second verdict: id %q (first %q), endpoint %q", b.ID, v.ID, b.Endpoint)
	}
	if got := a.header.Get("Content-Type"); got != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
}

// TestVerdictsDeterministic: the same requests give the same answers,
// byte for byte, on a fresh server.
func TestVerdictsDeterministic(t *testing.T) {
	run := func() [][]byte {
		c := newClock()
		s := newServer(t, castleserver.Config{Now: c.Now})
		var out [][]byte
		for i := range 30 {
			user := fmt.Sprint("u", i%4)
			out = append(out, post(t, s, castleserver.RiskPath, login(user, fmt.Sprint("d", i%3), "$succeeded", c.Now())).body)
			c.Advance(700 * time.Millisecond)
		}
		return out
	}
	a, b := run(), run()
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("answer %d differs:\n%s\n%s", i, a[i], b[i])
		}
	}
}
