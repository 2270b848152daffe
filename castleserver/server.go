// Package castleserver is a Castle-compatible API server for tests, the demo
// and local dry runs. It serves Castle's three event endpoints the way
// Castle documents them (destination/CASTLE_API.md is the contract this
// project relies on):
//
//   - POST /v1/log: records an event; answers 204 (Config.SuccessStatus)
//     with no body.
//   - POST /v1/risk and POST /v1/filter: score an event and answer 201 with
//     a JSON verdict (id, type, status, risk, scores, policy, signals,
//     device), as Castle's Risk and Filter APIs do.
//
// On every endpoint it checks HTTP Basic auth with the API secret (an empty
// user), validates the JSON body against the fields Castle publishes for
// that endpoint (answering 422 invalid_parameters with a message naming the
// JSON pointer, as Castle does), checks request tokens on /v1/risk and
// /v1/filter (422 invalid_request_token), enforces the per-user-id rate
// limit of 6 requests per second and 10 per 5 seconds across all three
// endpoints (429 with Retry-After and X-RateLimit-* headers), and answers
// errors with Castle's {"type","message"} bodies. It records what it
// accepted (queryable by path, and dumpable as NDJSON) and injects faults on
// demand: any status or body, 429s, slow answers, hangs, connection resets,
// outages, a rotated secret, and "start failing after N events".
//
// Where Castle's behaviour is not documented this server makes a choice
// and says so; the choices:
//
//   - Request tokens are minted by NewRequestToken, which encodes a creation
//     time and a device name. A token is refused (422 invalid_request_token)
//     when it is empty, malformed, older than Config.TokenLifetime (120 s,
//     Castle's documented lifetime) or more than 30 s in the future by the
//     server's clock (Config.Now), or when the test refused it with
//     RefuseToken. A missing token or one that is not a string is a schema
//     error (422 invalid_parameters). A token may be used more than once: a
//     client retrying after a timeout resends the same token.
//   - Verdicts come from four deterministic rules (documented on
//     ScoringConfig): new_device, disposable_email,
//     multiple_accounts_per_device and high_activity_ip. Each signal adds fixed amounts to the three scores;
//     risk is the highest score; the policy is deny at 0.8 and above,
//     challenge at 0.5 and above, allow below.
//   - The per-user-id limit counts requests to /v1/risk, /v1/filter and
//     /v1/log together. Castle's OpenAPI text has said "Risk, Log" (2022–23)
//     and "Risk, Filter" (since late 2024); counting all three satisfies
//     both readings. On /v1/filter the user is user.id, else
//     matching_user_id.
//   - Top-level fields Castle documents for no endpoint (sent_at, timestamp,
//     ...) are accepted and ignored, as Castle's SDKs send some of them. A
//     field Castle documents only for another endpoint (params or
//     matching_user_id outside /v1/filter, changeset outside /v1/risk, the
//     skip_* flags and expand on /v1/log) is refused with 422, so a client
//     that routes a field to the wrong endpoint finds out in tests.
//   - /v1/log accepts a context without headers (Castle's schema requires
//     them; this server has always accepted their absence on log), and also
//     "$page" as a type, which Castle's published enum lacks but Segment's
//     Castle destination documents.
//   - A public IP is a global unicast address outside RFC 1918 and RFC 4193;
//     the documentation ranges (192.0.2.0/24, 2001:db8::/32, ...) count as
//     public, so examples work.
//
// It is not Castle: its verdicts are toys, it serves no other endpoint
// (every other path is 404 route_not_found, so a base URL with an extra
// "/v1" is caught), and it keeps its state in memory.
package castleserver

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The paths served.
const (
	LogPath    = "/v1/log"
	RiskPath   = "/v1/risk"
	FilterPath = "/v1/filter"
)

// endpoint is one of the served paths.
type endpoint uint8

const (
	epLog endpoint = iota + 1
	epRisk
	epFilter
)

func endpointOf(path string) (endpoint, bool) {
	switch path {
	case LogPath:
		return epLog, true
	case RiskPath:
		return epRisk, true
	case FilterPath:
		return epFilter, true
	}
	return 0, false
}

func (e endpoint) path() string {
	switch e {
	case epRisk:
		return RiskPath
	case epFilter:
		return FilterPath
	}
	return LogPath
}

func (e endpoint) scored() bool { return e == epRisk || e == epFilter }

// DefaultTypes are the event types accepted on /v1/log: the /v1/log type
// enum of Castle's OpenAPI description (castle-java
// model/generated/Log.java), plus "$page". "$page" is not in the published
// enum, but it is what Segment's Castle destination documents for page
// calls and what this project sends by default; whether Castle accepts it
// is unverified, so it is accepted here to let the default configuration
// be tested end to end.
var DefaultTypes = []string{
	"$challenge", "$custom", "$login", "$password_reset_request", "$profile_reset",
	"$profile_update", "$registration", "$logout", "$transaction", "$page",
}

// riskTypes and filterTypes are the published type enums of /v1/risk and
// /v1/filter (castle-java model/generated/Risk.java, Filter.java).
var (
	riskTypes = []string{
		"$challenge", "$registration", "$login", "$profile_update", "$profile_reset",
		"$transaction", "$logout", "$custom",
	}
	filterTypes = []string{
		"$registration", "$login", "$password_reset_request", "$custom", "$challenge", "$transaction",
	}
)

// Statuses: $requested exists on /v1/risk only, for $challenge.
var (
	logStatuses  = []string{"$attempted", "$succeeded", "$failed"}
	riskStatuses = []string{"$attempted", "$succeeded", "$failed", "$requested"}
)

// Limit allows Requests accepted requests per user id in any interval of
// length Per.
type Limit struct {
	Requests int
	Per      time.Duration
}

// DefaultLimits are Castle's documented per-user-id limits.
var DefaultLimits = []Limit{{Requests: 6, Per: time.Second}, {Requests: 10, Per: 5 * time.Second}}

// DefaultTokenLifetime is how long Castle documents a request token to be
// valid after its creation.
const DefaultTokenLifetime = 120 * time.Second

// Config configures a Server. Zero fields take the defaults given.
type Config struct {
	// Secret is the API secret expected as the Basic auth password (with
	// an empty user). Required. SetSecret replaces it while serving.
	Secret string
	// MaxBodyBytes bounds the request body; larger bodies get 413.
	// Default 1 MiB.
	MaxBodyBytes int64
	// MaxNameLength bounds "name", in characters. Default 1024.
	MaxNameLength int
	// MaxStringLength bounds string values in properties and user traits,
	// in characters (inclusive). Default 1024. (Segment's Castle docs give
	// this limit; Castle's own docs give none.)
	MaxStringLength int
	// Types are the accepted "type" values on /v1/log. Default
	// DefaultTypes. (/v1/risk and /v1/filter accept their published
	// enums.)
	Types []string
	// Limits are the per-user-id rate limits, shared by the three
	// endpoints. Default DefaultLimits.
	Limits []Limit
	// RateLimitOff disables the per-user rate limit (and its headers).
	RateLimitOff bool
	// MaxRecords bounds how many accepted requests are kept for Accepted
	// and WriteNDJSON; later ones are counted but not kept. Default
	// 100,000; negative means unbounded.
	MaxRecords int
	// Seed seeds the generator that draws rate-based faults, so a run is
	// reproducible. Default 1.
	Seed uint64
	// SuccessStatus is the status of an accepted /v1/log request. Default
	// 204 (what Castle's Node SDK tests expect of /v1/log; its Cloudflare
	// sample expects 201; clients must accept any 2xx). /v1/risk and
	// /v1/filter always answer 201 with a verdict.
	SuccessStatus int
	// Now is the server's clock: request token ages, the rate limiter, the
	// scoring windows and the receive times of records read it. Default
	// time.Now (which a testing/synctest bubble fakes).
	Now func() time.Time
	// TokenLifetime is how long after its creation a request token is
	// accepted. Default DefaultTokenLifetime (120 s).
	TokenLifetime time.Duration
	// Scoring tunes the verdict rules. Zero fields take the defaults
	// documented on ScoringConfig.
	Scoring ScoringConfig
}

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxNameLength == 0 {
		c.MaxNameLength = 1024
	}
	if c.MaxStringLength == 0 {
		c.MaxStringLength = 1024
	}
	if c.Types == nil {
		c.Types = DefaultTypes
	}
	if c.Limits == nil {
		c.Limits = DefaultLimits
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = 100_000
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.SuccessStatus == 0 {
		c.SuccessStatus = http.StatusNoContent
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.TokenLifetime == 0 {
		c.TokenLifetime = DefaultTokenLifetime
	}
	c.Scoring = c.Scoring.withDefaults()
	return c
}

// Validate reports the first invalid setting. It never prints the secret.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Secret == "":
		return errors.New("castle server: secret is empty")
	case c.MaxBodyBytes < 0:
		return errors.New("castle server: max body bytes must be > 0")
	case c.MaxNameLength < 0 || c.MaxStringLength < 0:
		return errors.New("castle server: length limits must be > 0")
	case c.SuccessStatus < 200 || c.SuccessStatus > 299:
		return errors.New("castle server: success status must be 2xx")
	case c.TokenLifetime < 0:
		return errors.New("castle server: token lifetime must be > 0")
	}
	if !c.RateLimitOff {
		for i, l := range c.Limits {
			if l.Requests < 1 || l.Requests > 1000 || l.Per <= 0 {
				return fmt.Errorf("castle server: Limits[%d] must have 1..1000 requests per a positive interval", i)
			}
		}
	}
	return c.Scoring.validate()
}

// Server is a Castle-compatible http.Handler. Build it with New; it is safe
// for concurrent use, and every setter may be called while it serves.
type Server struct {
	cfg     Config
	secret  atomic.Pointer[[]byte]
	types   map[endpoint]map[string]struct{}
	limiter *limiter // nil when off
	scorer  *scorer

	closing   chan struct{}
	closeOnce sync.Once

	fmu       sync.Mutex // guards the fault settings and rng
	outage    *Fault
	next      []queuedFault
	rates     []rateFault
	latency   time.Duration
	failAfter *pendingOutage
	rng       *rand.Rand

	tmu     sync.Mutex // guards refused
	refused map[string]struct{}

	mu       sync.Mutex // guards what follows
	records  []record
	requests int64
	accepted int64
	byPath   map[string]int64
	byStatus map[int]int64
	faults   map[string]int64
	waiters  []waiter
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:      cfg,
		closing:  make(chan struct{}),
		rng:      rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		refused:  make(map[string]struct{}),
		byPath:   make(map[string]int64),
		byStatus: make(map[int]int64),
		faults:   make(map[string]int64),
		scorer:   newScorer(cfg.Scoring),
	}
	s.SetSecret(cfg.Secret)
	s.types = map[endpoint]map[string]struct{}{
		epLog: set(cfg.Types), epRisk: set(riskTypes), epFilter: set(filterTypes),
	}
	if !cfg.RateLimitOff {
		s.limiter = newLimiter(cfg.Limits)
	}
	return s, nil
}

func set(xs []string) map[string]struct{} {
	m := make(map[string]struct{}, len(xs))
	for _, x := range xs {
		m[x] = struct{}{}
	}
	return m
}

// SetSecret replaces the API secret the server accepts, effective for the
// next request: requests with the old secret then get 401, as after a
// rotation at Castle. An empty secret refuses every request.
func (s *Server) SetSecret(secret string) {
	b := []byte(secret)
	s.secret.Store(&b)
}

// Close releases requests held by Hang faults and latency (they answer 503)
// and makes later held requests answer at once. The caller still shuts
// down its http.Server. Close is idempotent.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closing) }) }

// ServeHTTP answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d := s.currentLatency(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.closing:
			t.Stop()
		}
	}
	ep, ok := endpointOf(r.URL.Path)
	if !ok {
		s.fail(w, http.StatusNotFound, "route_not_found", "No route matches "+strconv.Quote(r.Method+" "+r.URL.Path))
		return
	}
	if f, ok := s.drawFault(ep.path()); ok {
		s.inject(w, r, f)
		return
	}
	user, pass, ok := r.BasicAuth()
	secret := *s.secret.Load()
	if !ok || user != "" || len(secret) == 0 || subtle.ConstantTimeCompare([]byte(pass), secret) != 1 {
		s.fail(w, http.StatusUnauthorized, "unauthorized", "Unauthorized: provide your API secret as the Basic auth password, with no username")
		return
	}
	if r.Method != http.MethodPost {
		s.fail(w, http.StatusBadRequest, "bad_request", "Only POST is supported on "+ep.path())
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		s.fail(w, http.StatusBadRequest, "bad_request", "Content-Type must be application/json")
		return
	}
	body, err := readBody(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			e := errTooLarge(s.cfg.MaxBodyBytes)
			s.fail(w, e.status, e.typ, e.message)
			return
		}
		s.fail(w, http.StatusBadRequest, "bad_request", "Could not read the request body")
		return
	}
	ev, verr := s.validate(ep, body)
	if verr != nil {
		s.fail(w, verr.status, verr.typ, verr.message)
		return
	}
	now := s.cfg.Now()
	if ep.scored() && !ev.skipToken {
		if msg, ok := s.checkToken(ev.token, now); !ok {
			s.fail(w, http.StatusUnprocessableEntity, "invalid_request_token", msg)
			return
		}
	}
	if s.limiter != nil {
		d := s.limiter.admit(ev.limitKey(), now)
		setRateHeaders(w.Header(), d)
		if !d.ok {
			w.Header().Set("Retry-After", strconv.Itoa(ceilSeconds(d.retryAfter, 1)))
			s.fail(w, http.StatusTooManyRequests, "too_many_requests",
				"Rate limit exceeded: at most "+s.limiter.describe()+" per user id")
			return
		}
	}
	if !ep.scored() {
		s.record(body, ev, nil, now)
		w.WriteHeader(s.cfg.SuccessStatus)
		s.count(s.cfg.SuccessStatus)
		s.acceptedOne()
		return
	}
	resp := s.scorer.score(ev, now)
	s.record(body, ev, resp, now)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(resp)))
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(resp)
	s.count(http.StatusCreated)
	s.acceptedOne()
}

// readBody reads at most limit bytes of the body (else an
// *http.MaxBytesError), in one allocation when the length is declared.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n >= 0 && n <= limit {
		b := make([]byte, n)
		if _, err := io.ReadFull(rd, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(rd)
}

// errorBody is Castle's error object.
type errorBody struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// fail writes a Castle error answer and counts it.
func (s *Server) fail(w http.ResponseWriter, code int, typ, msg string) {
	if s.limiter != nil && w.Header()[hdrLimit] == nil {
		setRateHeaders(w.Header(), s.limiter.fresh())
	}
	b, _ := json.Marshal(errorBody{Type: typ, Message: msg})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
	s.count(code)
}

func (s *Server) count(code int) {
	s.mu.Lock()
	s.requests++
	s.byStatus[code]++
	s.mu.Unlock()
}

// ceilSeconds rounds d up to whole seconds, at least lo.
func ceilSeconds(d time.Duration, lo int) int {
	return max(int((d+time.Second-1)/time.Second), lo)
}
