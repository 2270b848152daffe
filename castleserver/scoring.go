package castleserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ScoringConfig tunes the verdict rules; zero fields take the defaults
// given. The rules: every /v1/risk and /v1/filter request the server
// accepts is scored by these rules, in this order, from the state that
// earlier accepted requests left (refused requests leave none):
//
//   - The device is the request token's device name (DeviceFingerprint),
//     or, for a token minted with no device name or with token validation
//     skipped, the request's User-Agent header and context.ip. A request
//     with neither has no device.
//   - new_device: on /v1/risk, the user id has not yet succeeded (status
//     $succeeded) on this device. A succeeded request then makes the device
//     known to the user; failed and attempted ones do not, so a failed login
//     from a new device and the succeeding retry both show the signal.
//   - disposable_email: the email (user.email, or params.email on
//     /v1/filter) is at a domain in ScoringConfig.DisposableDomains, or a
//     subdomain of one.
//   - multiple_accounts_per_device: this device has been used by at least
//     ScoringConfig.AccountsPerDevice distinct accounts, this one included.
//     The account is user.id, else matching_user_id, else the submitted
//     params (email, else username, else phone), compared case-insensitively.
//   - high_activity_ip: at least ScoringConfig.IPBurst.Requests scored
//     requests, this one included, came from this context.ip within
//     ScoringConfig.IPBurst.Per.
//
// Scores start at 0.05 each; each signal adds to them:
//
//	signal                        account_takeover  account_abuse  bot
//	new_device                    +0.40
//	disposable_email                                +0.55
//	multiple_accounts_per_device  +0.15             +0.45
//	high_activity_ip                                               +0.80
//
// Each score is capped at 0.99 and rounded to two decimals; risk is the
// highest of the three. The policy action is deny when risk >= 0.80,
// challenge when risk >= 0.50, allow below. The state is bounded: each of
// its tables is emptied when it outgrows ScoringConfig.MaxTracked entries.
type ScoringConfig struct {
	// DisposableDomains are the email domains that give
	// disposable_email. Default DefaultDisposableDomains.
	DisposableDomains []string
	// AccountsPerDevice is how many distinct accounts on one device give
	// multiple_accounts_per_device. Default 3.
	AccountsPerDevice int
	// IPBurst is how many scored requests from one IP within how long give
	// high_activity_ip. Default 10 per minute.
	IPBurst Limit
	// MaxTracked bounds each table of the scoring state (users' known
	// devices, devices' accounts, IPs' recent requests). Default 100,000.
	MaxTracked int
}

// DefaultDisposableDomains are well-known disposable email providers.
var DefaultDisposableDomains = []string{
	"mailinator.com", "guerrillamail.com", "sharklasers.com", "10minutemail.com", "temp-mail.org",
	"yopmail.com", "trashmail.com", "getnada.com", "dispostable.com", "maildrop.cc",
}

func (c ScoringConfig) withDefaults() ScoringConfig {
	if c.DisposableDomains == nil {
		c.DisposableDomains = DefaultDisposableDomains
	}
	if c.AccountsPerDevice == 0 {
		c.AccountsPerDevice = 3
	}
	if c.IPBurst == (Limit{}) {
		c.IPBurst = Limit{Requests: 10, Per: time.Minute}
	}
	if c.MaxTracked == 0 {
		c.MaxTracked = 100_000
	}
	return c
}

func (c ScoringConfig) validate() error {
	switch {
	case c.AccountsPerDevice < 2:
		return errors.New("castle server: Scoring.AccountsPerDevice must be >= 2")
	case c.IPBurst.Requests < 1 || c.IPBurst.Requests > 10_000 || c.IPBurst.Per <= 0:
		return errors.New("castle server: Scoring.IPBurst must have 1..10000 requests per a positive interval")
	case c.MaxTracked < 1:
		return errors.New("castle server: Scoring.MaxTracked must be > 0")
	}
	return nil
}

// Signal names the server's rules produce (Castle's names).
const (
	SignalNewDevice        = "new_device"
	SignalDisposableEmail  = "disposable_email"
	SignalMultipleAccounts = "multiple_accounts_per_device"
	SignalHighActivityIP   = "high_activity_ip"
)

// Policy thresholds and identity.
const (
	denyAt      = 0.80
	challengeAt = 0.50
	baseScore   = 0.05
	maxScore    = 0.99
)

// scorer holds the state of the rules.
type scorer struct {
	cfg        ScoringConfig
	disposable map[string]struct{}

	mu            sync.Mutex
	seq           uint64
	knownDevices  map[string]map[string]struct{} // user id -> fingerprints
	deviceAccts   map[string]map[string]struct{} // fingerprint -> accounts (at most AccountsPerDevice)
	ipTimes       map[string][]time.Time         // ip -> recent times (at most IPBurst.Requests)
	lastIPSweepAt time.Time
}

func newScorer(cfg ScoringConfig) *scorer {
	return &scorer{
		cfg:          cfg,
		disposable:   set(lowerAll(cfg.DisposableDomains)),
		knownDevices: make(map[string]map[string]struct{}),
		deviceAccts:  make(map[string]map[string]struct{}),
		ipTimes:      make(map[string][]time.Time),
	}
}

func lowerAll(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strings.ToLower(x)
	}
	return out
}

// scores are the three score kinds of a verdict.
type scores struct{ ato, abuse, bot float64 }

// score applies the rules to an accepted request and returns the 201
// body.
func (sc *scorer) score(p parsed, now time.Time) []byte {
	fp := ""
	if !p.skipToken {
		if _, dev, ok := parseToken(p.token); ok && dev != "" {
			fp = DeviceFingerprint(dev)
		}
	}
	if fp == "" && p.hasContext && (p.userAgent != "" || p.ip != "") {
		fp = uaFingerprint(p.userAgent, p.ip)
	}
	email := p.email
	if email == "" {
		email = p.paramEmail
	}
	account := strings.ToLower(firstNonEmpty(p.userID, p.matchingUserID, p.paramEmail, p.paramUN, p.paramPhone))

	sc.mu.Lock()
	sc.seq++
	seq := sc.seq
	var signals []string
	if p.ep == epRisk && fp != "" {
		if _, known := sc.knownDevices[p.userID][fp]; !known {
			signals = append(signals, SignalNewDevice)
		}
		if p.status == "$succeeded" {
			addTo(sc.knownDevices, p.userID, fp, -1, sc.cfg.MaxTracked)
		}
	}
	if sc.isDisposable(email) {
		signals = append(signals, SignalDisposableEmail)
	}
	if fp != "" && account != "" {
		n := addTo(sc.deviceAccts, fp, account, sc.cfg.AccountsPerDevice, sc.cfg.MaxTracked)
		if n >= sc.cfg.AccountsPerDevice {
			signals = append(signals, SignalMultipleAccounts)
		}
	}
	if p.ip != "" && sc.ipBurst(p.ip, now) {
		signals = append(signals, SignalHighActivityIP)
	}
	sc.mu.Unlock()

	s := scores{ato: baseScore, abuse: baseScore, bot: baseScore}
	for _, sig := range signals {
		switch sig {
		case SignalNewDevice:
			s.ato += 0.40
		case SignalDisposableEmail:
			s.abuse += 0.55
		case SignalMultipleAccounts:
			s.ato += 0.15
			s.abuse += 0.45
		case SignalHighActivityIP:
			s.bot += 0.80
		}
	}
	s.ato, s.abuse, s.bot = round2(s.ato), round2(s.abuse), round2(s.bot)
	risk := max(s.ato, s.abuse, s.bot)
	slices.Sort(signals)
	return appendVerdict(nil, p, seq, fp, signals, s, risk, now)
}

func firstNonEmpty(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return ""
}

func round2(f float64) float64 {
	f = min(f, maxScore)
	return float64(int(f*100+0.5)) / 100
}

// addTo adds v to the set under k (keeping at most limit members when
// limit > 0) and returns the set's size. A table that outgrows maxTracked
// keys is emptied first.
func addTo(m map[string]map[string]struct{}, k, v string, limit, maxTracked int) int {
	set := m[k]
	if set == nil {
		if len(m) >= maxTracked {
			clear(m)
		}
		set = make(map[string]struct{})
		m[k] = set
	}
	if _, ok := set[v]; !ok && (limit <= 0 || len(set) < limit) {
		set[v] = struct{}{}
	}
	return len(set)
}

func (sc *scorer) isDisposable(email string) bool {
	at := strings.LastIndexByte(email, '@')
	if at < 0 {
		return false
	}
	domain := strings.ToLower(strings.TrimSuffix(email[at+1:], "."))
	for domain != "" {
		if _, ok := sc.disposable[domain]; ok {
			return true
		}
		_, rest, ok := strings.Cut(domain, ".")
		if !ok {
			return false
		}
		domain = rest
	}
	return false
}

// ipBurst records a scored request from ip at now and reports whether ip
// has made IPBurst.Requests of them within IPBurst.Per.
func (sc *scorer) ipBurst(ip string, now time.Time) bool {
	b := sc.cfg.IPBurst
	if now.Sub(sc.lastIPSweepAt) >= b.Per || len(sc.ipTimes) >= sc.cfg.MaxTracked {
		sc.lastIPSweepAt = now
		for k, ts := range sc.ipTimes {
			if len(ts) == 0 || !ts[len(ts)-1].After(now.Add(-b.Per)) {
				delete(sc.ipTimes, k)
			}
		}
		if len(sc.ipTimes) >= sc.cfg.MaxTracked {
			clear(sc.ipTimes)
		}
	}
	ts := sc.ipTimes[ip]
	cut := 0
	for cut < len(ts) && !ts[cut].After(now.Add(-b.Per)) {
		cut++
	}
	ts = append(ts[cut:], now)
	if len(ts) > b.Requests {
		ts = ts[len(ts)-b.Requests:]
	}
	sc.ipTimes[ip] = ts
	return len(ts) >= b.Requests
}

// Policy identity reported with each action.
var policies = map[string]struct{ name, id string }{
	"allow":     {"Allow risk < 0.50", "castleserver-policy-allow"},
	"challenge": {"Challenge risk >= 0.50", "castleserver-policy-challenge"},
	"deny":      {"Deny risk >= 0.80", "castleserver-policy-deny"},
}

const policyRevision = "castleserver-rev-1"

func action(risk float64) string {
	switch {
	case risk >= denyAt:
		return "deny"
	case risk >= challengeAt:
		return "challenge"
	}
	return "allow"
}

// eventID is a Castle-like event id (22 base64url characters), unique per
// scored request of this server.
func eventID(seq uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	h := sha256.Sum256(append([]byte("castleserver event\x00"), b[:]...))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

// appendVerdict writes the 201 body, shaped like Castle's Risk and Filter
// responses. With token validation skipped Castle computes no scores, so
// risk and scores are left out (the policy still follows them).
func appendVerdict(b []byte, p parsed, seq uint64, fp string, signals []string, s scores, risk float64, now time.Time) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, eventID(seq))
	b = append(b, `,"type":`...)
	b = appendString(b, p.typ)
	if p.status != "" {
		b = append(b, `,"status":`...)
		b = appendString(b, p.status)
	}
	if p.name != "" {
		b = append(b, `,"name":`...)
		b = appendString(b, p.name)
	}
	created := p.createdAt
	if created.IsZero() {
		created = now
	}
	b = append(b, `,"created_at":`...)
	b = appendString(b, created.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	if !p.skipToken {
		b = append(b, `,"risk":`...)
		b = strconv.AppendFloat(b, risk, 'f', -1, 64)
		b = append(b, `,"scores":{"account_abuse":{"score":`...)
		b = strconv.AppendFloat(b, s.abuse, 'f', -1, 64)
		b = append(b, `},"account_takeover":{"score":`...)
		b = strconv.AppendFloat(b, s.ato, 'f', -1, 64)
		b = append(b, `},"bot":{"score":`...)
		b = strconv.AppendFloat(b, s.bot, 'f', -1, 64)
		b = append(b, `}}`...)
	}
	act := action(risk)
	pol := policies[act]
	b = append(b, `,"policy":{"action":`...)
	b = appendString(b, act)
	b = append(b, `,"name":`...)
	b = appendString(b, pol.name)
	b = append(b, `,"id":`...)
	b = appendString(b, pol.id)
	b = append(b, `,"revision_id":`...)
	b = appendString(b, policyRevision)
	b = append(b, `},"signals":{`...)
	for i, sig := range signals {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, sig)
		b = append(b, `:{}`...)
	}
	b = append(b, '}')
	if fp != "" {
		h := sha256.Sum256([]byte("castleserver device token\x00" + fp + "\x00" + p.userID))
		b = append(b, `,"device":{"token":`...)
		b = appendString(b, base64.RawURLEncoding.EncodeToString(h[:18]))
		b = append(b, `,"fingerprint":`...)
		b = appendString(b, fp)
		b = append(b, '}')
	}
	b = append(b, `,"endpoint":`...)
	b = appendString(b, p.ep.path())
	return append(b, '}')
}

// appendString appends s as a JSON string (without encoding/json's
// escaping of <, > and &, which Castle does not do either).
func appendString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}
