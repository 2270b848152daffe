// Package castleserver is a Castle-compatible API server for tests, the demo
// and local dry runs. It serves POST /v1/log the way Castle documents it:
// HTTP Basic auth with the API secret, a JSON body validated against
// Castle's published schema (answering 422 invalid_parameters with a JSON
// pointer, as Castle does), the per-user-id rate limit of 6 requests per
// second and 10 per 5 seconds (429 with Retry-After, X-RateLimit-* headers),
// and Castle's {"type","message"} error bodies. It records what it accepted
// (queryable, and dumpable as NDJSON) and injects faults on demand: 5xx and
// 429 answers, slow answers, hangs, connection resets and outages.
//
// It is not Castle: it scores nothing, serves no other endpoint (every other
// path is 404 route_not_found), and where Castle's behaviour is not
// documented (see destination/CASTLE_API.md) it makes a documented choice.
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
	"time"
)

// LogPath is the one path served.
const LogPath = "/v1/log"

// DefaultTypes are the accepted event types: the /v1/log type enum of
// Castle's OpenAPI description (castle-java model/generated/Log.java), plus
// "$page". "$page" is not in the published enum, but it is what Segment's
// Castle destination documents for page calls and what this project sends
// by default (SPEC §4); whether Castle accepts it is unverified, so it is
// accepted here to let the default configuration be tested end to end.
var DefaultTypes = []string{
	"$challenge", "$custom", "$login", "$password_reset_request", "$profile_reset",
	"$profile_update", "$registration", "$logout", "$transaction", "$page",
}

// statuses are the accepted values of "status".
var statuses = []string{"$attempted", "$succeeded", "$failed", "$requested"}

// Limit allows Requests accepted requests per user id in any interval of
// length Per.
type Limit struct {
	Requests int
	Per      time.Duration
}

// DefaultLimits are Castle's documented per-user-id limits for the Risk and
// Log APIs.
var DefaultLimits = []Limit{{Requests: 6, Per: time.Second}, {Requests: 10, Per: 5 * time.Second}}

// Config configures a Server. Zero fields take the defaults given.
type Config struct {
	// Secret is the API secret expected as the Basic auth password (with
	// an empty user). Required.
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
	// Types are the accepted "type" values. Default DefaultTypes.
	Types []string
	// Limits are the per-user-id rate limits. Default DefaultLimits.
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
	// SuccessStatus is the status of an accepted request. Default 204
	// (what Castle's Node SDK tests expect of /v1/log; its Cloudflare
	// sample expects 201; clients must accept any 2xx).
	SuccessStatus int
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
	}
	if !c.RateLimitOff {
		for i, l := range c.Limits {
			if l.Requests < 1 || l.Requests > 1000 || l.Per <= 0 {
				return fmt.Errorf("castle server: Limits[%d] must have 1..1000 requests per a positive interval", i)
			}
		}
	}
	return nil
}

// Server is a Castle-compatible http.Handler. Build it with New; it is safe
// for concurrent use, and every setter may be called while it serves.
type Server struct {
	cfg     Config
	secret  []byte
	types   map[string]struct{}
	limiter *limiter // nil when off

	closing   chan struct{}
	closeOnce sync.Once

	fmu     sync.Mutex // guards the fault settings and rng
	outage  *Fault
	next    []queuedFault
	rates   []rateFault
	latency time.Duration
	rng     *rand.Rand

	mu       sync.Mutex // guards what follows
	records  []record
	requests int64
	accepted int64
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
		secret:   []byte(cfg.Secret),
		types:    make(map[string]struct{}, len(cfg.Types)),
		closing:  make(chan struct{}),
		rng:      rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		byStatus: make(map[int]int64),
		faults:   make(map[string]int64),
	}
	for _, t := range cfg.Types {
		s.types[t] = struct{}{}
	}
	if !cfg.RateLimitOff {
		s.limiter = newLimiter(cfg.Limits)
	}
	return s, nil
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
	if r.URL.Path != LogPath {
		s.fail(w, http.StatusNotFound, "route_not_found", "No route matches "+strconv.Quote(r.Method+" "+r.URL.Path))
		return
	}
	if f, ok := s.drawFault(); ok {
		s.inject(w, r, f)
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != "" || subtle.ConstantTimeCompare([]byte(pass), s.secret) != 1 {
		s.fail(w, http.StatusUnauthorized, "unauthorized", "Unauthorized: provide your API secret as the Basic auth password, with no username")
		return
	}
	if r.Method != http.MethodPost {
		s.fail(w, http.StatusBadRequest, "bad_request", "Only POST is supported on "+LogPath)
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
			s.fail(w, http.StatusRequestEntityTooLarge, "bad_request",
				fmt.Sprintf("Request body is larger than %d bytes", s.cfg.MaxBodyBytes))
			return
		}
		s.fail(w, http.StatusBadRequest, "bad_request", "Could not read the request body")
		return
	}
	ev, verr := s.validate(body)
	if verr != nil {
		s.fail(w, verr.status, verr.typ, verr.message)
		return
	}
	now := time.Now()
	if s.limiter != nil {
		d := s.limiter.admit(ev.userID, now)
		setRateHeaders(w.Header(), d)
		if !d.ok {
			w.Header().Set("Retry-After", strconv.Itoa(ceilSeconds(d.retryAfter, 1)))
			s.fail(w, http.StatusTooManyRequests, "too_many_requests",
				"Rate limit exceeded: at most "+s.limiter.describe()+" per user id")
			return
		}
	}
	s.record(body, ev, now)
	w.WriteHeader(s.cfg.SuccessStatus)
	s.count(s.cfg.SuccessStatus)
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
