package traffic

import (
	"math/rand/v2"
	"time"

	analytics "github.com/segmentio/analytics-go/v3"
)

// Outcome is what the worker must do with one Segment message.
type Outcome string

// The outcomes of one message: the worker's filtering and mapping rules
// (docs/mapping.md) decide which.
const (
	Forward    Outcome = "forward"     // sent to Castle (/v1/log, or scored: see Expect.Scoring)
	Identified Outcome = "identified"  // an identify: sets the user, sends nothing
	Drop       Outcome = "drop"        // counted and skipped
	DeadLetter Outcome = "dead_letter" // given up on, kept with its bytes
)

// The drop and dead-letter reasons, exactly as the worker labels them
// (docs/mapping.md, "Filtering, in order").
const (
	ReasonMalformed           = "malformed"
	ReasonUnsupportedType     = "unsupported_type"
	ReasonServerSide          = "server_side"
	ReasonMobile              = "mobile"
	ReasonIntegrationDisabled = "integration_disabled"
	ReasonUserJWTInvalid      = "user_jwt_invalid"
	ReasonUserJWTMissing      = "user_jwt_missing" // never generated: RequireUserJWT=false is assumed
	ReasonDuplicate           = "duplicate"
)

// Expect is what the worker must do with one Segment message.
type Expect struct {
	MessageID string // "" for broken records where none is readable
	Type      string // "page", "track", "identify", "screen", ... or "" if unreadable
	Outcome   Outcome
	// Reason is set for Drop and DeadLetter: one of the Reason constants.
	Reason string
	// CastleType is set for Forward: "$page" or "$custom" (PAGE_TYPE=page),
	// or for a security event its Castle type ("$login", "$registration",
	// "$password_reset_request").
	CastleType string
	// CastleStatus is set for a forwarded security event: "$succeeded" or
	// "$failed"; "" for $page and $custom.
	CastleStatus string
	// CastleName is set for forwarded tracks: the event name (for a
	// security event its legacy name, "$login.succeeded").
	CastleName string
	// UserID is, for Forward, the Castle user.id expected: the JWT claim id
	// when Secure Mode applies, else the userId; "" if anonymous.
	UserID string
	// TraceID is, for Forward, the properties.trace_id the Castle request
	// carries (== MessageID).
	TraceID string
	// Scoring is, for a forwarded security event, the endpoint a worker
	// with CASTLE_SCORING=on sends it to: ScoringRisk when it names a user
	// and Castle's Risk API takes its type, else ScoringFilter. It holds
	// when the event is sent within SCORING_MAX_AGE of its time and Castle
	// accepts its request token (see the package doc); otherwise, and for
	// every other event, the worker sends to /v1/log and Scoring is "".
	Scoring string
}

// The values of Expect.Scoring: the endpoint names of verdict records and
// metrics.
const (
	ScoringRisk   = "risk"   // POST /v1/risk
	ScoringFilter = "filter" // POST /v1/filter
)

// Record is one Kafka message value: one Segment message, or an HTTP-API
// batch envelope of several. Key and Value must not be modified: the
// generator keeps recent ones to copy into duplicates.
type Record struct {
	// Key is the userId, else the anonymousId, so one user's messages share a
	// partition; nil for broken records. A browser envelope has its user's
	// key, a server envelope its first item's.
	Key   []byte
	Value []byte
	// Time is when the record was "received", for the Kafka timestamp: the
	// receivedAt of a single message (a duplicate keeps its original's
	// receivedAt and gets a later Time). It never decreases, except that it
	// wraps to Now-3h after passing Now (every ~1,000,000 records), and that
	// a security event is live: received in the 3 seconds before Now,
	// whatever the records around it say.
	Time time.Time
	// Expects holds one Expect per Segment message inside (one for a broken
	// record), in the order of the messages.
	Expects []Expect
}

// Mix sets what the stream is made of. The first eleven fields are relative
// weights of record kinds (they need not sum to 1; negative counts as 0);
// each non-envelope record is one kind, and the observed shares of kinds
// converge to weight/sum. Anonymous and SecureUsers are fractions in [0, 1].
// The zero Mix means DefaultMix. See the package doc for what each kind
// exercises.
type Mix struct {
	Page                float64 // forward page
	Track               float64 // forward track
	Identify            float64 // identified
	Duplicate           float64 // drop duplicate
	Unsupported         float64 // drop unsupported_type
	ServerSide          float64 // drop server_side
	Mobile              float64 // drop mobile
	IntegrationDisabled float64 // drop integration_disabled
	UserJWTInvalid      float64 // dead_letter user_jwt_invalid
	Malformed           float64 // dead_letter malformed
	// Security is forward track: a Castle security event (login, failed
	// login, registration, password reset request) with a fresh request
	// token. DefaultMix has none; SecurityMix adds them.
	Security float64

	// Anonymous is the share of forwardable page/track records sent by
	// anonymous visitors (no userId).
	Anonymous float64
	// SecureUsers is the share of registered users whose page/track/identify
	// carry a Secure Mode userJwt.
	SecureUsers float64
}

// DefaultMix is mostly forwardable page/track, some identify, and two to four
// percent of each drop and dead-letter kind.
func DefaultMix() Mix {
	return Mix{
		Page:                0.42,
		Track:               0.30,
		Identify:            0.08,
		Duplicate:           0.02,
		Unsupported:         0.03,
		ServerSide:          0.04,
		Mobile:              0.03,
		IntegrationDisabled: 0.03,
		UserJWTInvalid:      0.02,
		Malformed:           0.03,
		Anonymous:           0.35,
		SecureUsers:         0.30,
	}
}

// SecurityMix is DefaultMix plus security events as share of the records
// (in [0, 1)): the stream of a demo or test whose worker scores them.
func SecurityMix(share float64) Mix {
	m := DefaultMix()
	share = min(max(share, 0), 0.99)
	sum := 0.0
	for _, w := range m.weights() {
		sum += max(w, 0)
	}
	m.Security = sum * share / (1 - share)
	return m
}

// kind is one record kind of the Mix, in field order.
type kind int

const (
	kindPage kind = iota
	kindTrack
	kindIdentify
	kindDuplicate
	kindUnsupported
	kindServerSide
	kindMobile
	kindDisabled
	kindJWTInvalid
	kindMalformed
	kindSecurity
	numKinds
)

func (m Mix) weights() [numKinds]float64 {
	return [numKinds]float64{m.Page, m.Track, m.Identify, m.Duplicate, m.Unsupported,
		m.ServerSide, m.Mobile, m.IntegrationDisabled, m.UserJWTInvalid, m.Malformed, m.Security}
}

// Config configures a Generator. Zero fields take the documented defaults.
type Config struct {
	Seed int64
	Mix  Mix // zero: DefaultMix()
	// Secret is the Castle API secret valid Secure Mode tokens are signed
	// with. Empty: no Secure Mode traffic (neither valid nor invalid tokens).
	Secret string
	// Now is the reference clock: messages were received within the 3 hours
	// before it (security events within the 3 seconds before it, their
	// request tokens minted just before their time), and token exp/nbf are
	// relative to it. Zero: 2025-01-15T12:00:00Z (set it to time.Now() when
	// a live worker verifies the tokens or scores the security events).
	Now time.Time
	// Users is the registered user population (default 5,000). A few heavy
	// users (Users/1000, at least 1) send HeavyShare of the registered users'
	// records between them; the rest is uniform. Anonymous visitors are a
	// separate population of 2×Users.
	Users int
	// HeavyShare is the share of registered users' records sent by the heavy
	// users (default 0.05; negative: none).
	HeavyShare float64
	// EnvelopeFraction is the share of records that are HTTP-API batch
	// envelopes (default 0.02; negative: none).
	EnvelopeFraction float64
}

// DefaultNow is the reference clock used when Config.Now is zero.
func DefaultNow() time.Time { return time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC) }

const (
	defaultUsers      = 5000
	defaultHeavyShare = 0.05
	defaultEnvelope   = 0.02
	ringSize          = 1024
	receivedSpan      = 3 * time.Hour
)

func (c Config) withDefaults() Config {
	if c.Mix == (Mix{}) {
		c.Mix = DefaultMix()
	}
	if c.Now.IsZero() {
		c.Now = DefaultNow()
	}
	c.Now = c.Now.UTC()
	if c.Users <= 0 {
		c.Users = defaultUsers
	}
	switch {
	case c.HeavyShare == 0:
		c.HeavyShare = defaultHeavyShare
	case c.HeavyShare < 0:
		c.HeavyShare = 0
	case c.HeavyShare > 1:
		c.HeavyShare = 1
	}
	switch {
	case c.EnvelopeFraction == 0:
		c.EnvelopeFraction = defaultEnvelope
	case c.EnvelopeFraction < 0:
		c.EnvelopeFraction = 0
	case c.EnvelopeFraction > 1:
		c.EnvelopeFraction = 1
	}
	if c.Secret == "" {
		c.Mix.SecureUsers = 0
		c.Mix.UserJWTInvalid = 0
	}
	return c
}

// Generator streams Records. It is not safe for concurrent use.
type Generator struct {
	cfg    Config
	rng    *rand.Rand
	cum    [numKinds]float64 // cumulative kind weights
	total  float64
	heavy  int // the first heavy users of users are the heavy ones
	users  []*user
	anons  []*user
	shared *user     // the shared device of security events, built on first use
	clock  time.Time // the received clock
	seq    uint64    // records generated so far
	ring   [ringSize]ringEntry
	ringN  int // entries in ring
	ringAt int // next slot to write
	held   *ringEntry
	other  []byte // a secret that is not Secret, for badly signed tokens
	secret []byte
	// encode appends one analytics-go message as JSON: appendMessage, which
	// a test swaps for one that also checks it against encoding/json.
	encode func(dst []byte, msg any) []byte

	// Scratch reused by every message: encoding is synchronous and no
	// record keeps a reference to them (values are copied out).
	buf       []byte
	ctx       analytics.Context
	propsBuf  analytics.Properties
	traitsBuf analytics.Traits
	page      analytics.Page
	track     analytics.Track
	ident     analytics.Identify
	hints     map[string]map[string]any // context extras per user agent; read-only
}

// ringEntry is a forwardable single record that may be copied later.
type ringEntry struct {
	key, value []byte
	expect     Expect
}

// New returns a Generator for cfg.
func New(cfg Config) *Generator {
	cfg = cfg.withDefaults()
	g := &Generator{
		cfg:       cfg,
		rng:       rand.New(rand.NewPCG(uint64(cfg.Seed), 0x9e3779b97f4a7c15)),
		users:     make([]*user, cfg.Users),
		anons:     make([]*user, 2*cfg.Users),
		heavy:     max(1, cfg.Users/1000),
		clock:     cfg.Now.Add(-receivedSpan),
		secret:    []byte(cfg.Secret),
		other:     []byte(cfg.Secret + "-rotated-2023"),
		encode:    appendMessage,
		buf:       make([]byte, 0, 4096),
		propsBuf:  make(analytics.Properties, 16),
		traitsBuf: make(analytics.Traits, 16),
		hints:     make(map[string]map[string]any, len(uaHints)),
	}
	for ua, h := range uaHints {
		g.hints[ua] = map[string]any{"userAgentData": h}
	}
	w := cfg.Mix.weights()
	for i, x := range w {
		g.total += max(x, 0)
		g.cum[i] = g.total
	}
	if g.total == 0 { // every weight zero or negative: plain pages
		g.cum[kindPage], g.total = 1, 1
		for i := kindPage + 1; i < numKinds; i++ {
			g.cum[i] = 1
		}
	}
	return g
}

// Generate returns the first n records of the stream New(cfg) yields.
func Generate(cfg Config, n int) []Record {
	g := New(cfg)
	out := make([]Record, 0, max(n, 0))
	for range n {
		out = append(out, g.Next())
	}
	return out
}

// Next returns the next record of the stream.
func (g *Generator) Next() Record {
	g.tick()
	var r Record
	var fresh *ringEntry
	if g.cfg.EnvelopeFraction > 0 && g.rng.Float64() < g.cfg.EnvelopeFraction {
		r = g.envelope()
	} else {
		r, fresh = g.single(g.pickKind())
	}
	// A forwardable record becomes copyable only after one more record, so a
	// copy always has at least one other record between it and its original.
	if g.held != nil {
		g.ring[g.ringAt] = *g.held
		g.ringAt = (g.ringAt + 1) % ringSize
		g.ringN = min(g.ringN+1, ringSize)
	}
	g.held = fresh
	g.seq++
	return r
}

// tick advances the received clock by an exponential gap (mean 10 ms),
// wrapping to 3 h before Now when it would pass Now.
func (g *Generator) tick() {
	gap := time.Duration(g.rng.ExpFloat64() * float64(10*time.Millisecond))
	g.clock = g.clock.Add(gap).Truncate(time.Millisecond)
	if g.clock.After(g.cfg.Now) {
		g.clock = g.cfg.Now.Add(-receivedSpan)
	}
}

// newProps returns the scratch properties, emptied.
func (g *Generator) newProps() analytics.Properties {
	clear(g.propsBuf)
	return g.propsBuf
}

// newTraits returns the scratch traits, emptied.
func (g *Generator) newTraits() analytics.Traits {
	clear(g.traitsBuf)
	return g.traitsBuf
}

// encodeOut encodes msg into the scratch buffer, lets enrich append
// top-level fields (nil: none), and returns an exact-size copy.
func (g *Generator) encodeOut(msg any, enrich func(w *fieldWriter)) []byte {
	b := g.encode(g.buf[:0], msg)
	if enrich != nil {
		w := fieldWriter{b: b[:len(b)-1]} // without the closing brace
		enrich(&w)
		b = w.done()
	}
	g.buf = b[:0]
	return append([]byte(nil), b...)
}

func (g *Generator) pickKind() kind {
	x := g.rng.Float64() * g.total
	for k := range numKinds {
		if x < g.cum[k] {
			return k
		}
	}
	return kindPage
}

// Tally counts expectations, for summaries and assertions.
type Tally struct {
	Forward    map[string]int // by Segment type
	Identified int
	Drop       map[string]int // by reason
	DeadLetter map[string]int // by reason
	// Scored counts the forwarded security events by Expect.Scoring (nil
	// when there are none).
	Scored map[string]int
}

// Add counts every Expect of r.
func (t *Tally) Add(r Record) {
	for _, e := range r.Expects {
		t.AddExpect(e)
	}
}

// AddExpect counts one Expect.
func (t *Tally) AddExpect(e Expect) {
	switch e.Outcome {
	case Forward:
		t.Forward = inc(t.Forward, e.Type)
		if e.Scoring != "" {
			t.Scored = inc(t.Scored, e.Scoring)
		}
	case Identified:
		t.Identified++
	case Drop:
		t.Drop = inc(t.Drop, e.Reason)
	case DeadLetter:
		t.DeadLetter = inc(t.DeadLetter, e.Reason)
	}
}

// Total is the number of messages counted.
func (t *Tally) Total() int {
	n := t.Identified
	for _, m := range []map[string]int{t.Forward, t.Drop, t.DeadLetter} {
		for _, v := range m {
			n += v
		}
	}
	return n
}

func inc(m map[string]int, k string) map[string]int {
	if m == nil {
		m = make(map[string]int)
	}
	m[k]++
	return m
}
