package castleserver

import (
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"
)

type faultKind uint8

const (
	kindStatus faultKind = iota + 1
	kindHang
	kindReset
	kindRespond
	kindInvalidToken
)

// Fault is an injected failure. Build one with Status, TooManyRequests,
// InvalidRequestToken, Respond, Hang or Reset; On narrows it to one path.
// A fault applies to the served paths only (an unknown path is 404 first),
// and faulted requests are never recorded as accepted.
type Fault struct {
	kind       faultKind
	status     int
	retryAfter string
	body       string
	path       string // "" for every served path
}

// On returns f restricted to requests for path (LogPath, RiskPath or
// FilterPath): a queued fault waits for the first request to path, a rate
// or an outage affects only path.
func (f Fault) On(path string) Fault {
	f.path = path
	return f
}

func (f Fault) appliesTo(path string) bool { return f.path == "" || f.path == path }

// Status answers with code and a Castle-style JSON error body (for
// example 500 server_error, 503 service_unavailable, 400 bad_request).
func Status(code int) Fault { return Fault{kind: kindStatus, status: code} }

// TooManyRequests answers 429 with the given Retry-After value: delta
// seconds ("2") or an HTTP-date; "" sends none.
func TooManyRequests(retryAfter string) Fault {
	return Fault{kind: kindStatus, status: http.StatusTooManyRequests, retryAfter: retryAfter}
}

// InvalidRequestToken answers 422 with Castle's invalid_request_token
// error, whatever the token (see also Server.RefuseToken).
func InvalidRequestToken() Fault { return Fault{kind: kindInvalidToken} }

// Respond answers with code and body as given (Content-Type
// application/json), for answers Castle might give that the server never
// makes itself: a 201 whose body is not JSON, a verdict without a policy.
func Respond(code int, body string) Fault {
	return Fault{kind: kindRespond, status: code, body: body}
}

// Hang holds the request without answering until the client gives up (its
// timeout or cancellation closes the connection) or the server is closed
// (then it answers 503).
func Hang() Fault { return Fault{kind: kindHang} }

// Reset reads the request headers, then drops the connection: over TCP
// with SO_LINGER 0, so the client sees a connection reset; over HTTP/2,
// the stream is reset.
func Reset() Fault { return Fault{kind: kindReset} }

// String is the fault's bounded name, as counted in Stats.Faults:
// "status_503", "respond_201", "invalid_request_token", "hang", "reset".
func (f Fault) String() string {
	switch f.kind {
	case kindStatus:
		return "status_" + strconv.Itoa(f.status)
	case kindRespond:
		return "respond_" + strconv.Itoa(f.status)
	case kindInvalidToken:
		return "invalid_request_token"
	case kindHang:
		return "hang"
	case kindReset:
		return "reset"
	default:
		return "none"
	}
}

type queuedFault struct {
	f Fault
	n int
}

type rateFault struct {
	f Fault
	p float64
}

// FailNext makes the next n requests (to f's path, see On) fail with f,
// after any faults already queued. Deterministic.
func (s *Server) FailNext(n int, f Fault) {
	if n <= 0 || f.kind == 0 {
		return
	}
	s.fmu.Lock()
	s.next = append(s.next, queuedFault{f: f, n: n})
	s.fmu.Unlock()
}

// FailRate makes each request (to f's path) fail with f with probability p,
// drawn from the server's seeded generator. Several rates may be set; their
// probabilities add up (at most 1). p <= 0 removes f's rate.
func (s *Server) FailRate(p float64, f Fault) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	rates := s.rates[:0:0]
	for _, r := range s.rates {
		if r.f != f {
			rates = append(rates, r)
		}
	}
	if p > 0 && f.kind != 0 {
		rates = append(rates, rateFault{f: f, p: min(p, 1)})
	}
	s.rates = rates
}

// StartOutage makes every request (to f's path) fail with f (typically
// Status(503) or Reset()) until EndOutage. An outage takes precedence over
// queued and rate-based faults. It replaces any outage under way, and
// cancels a pending FailAfter.
func (s *Server) StartOutage(f Fault) {
	s.fmu.Lock()
	s.outage, s.failAfter = &f, nil
	s.fmu.Unlock()
}

// EndOutage ends an outage (one started by FailAfter too) and cancels a
// pending FailAfter.
func (s *Server) EndOutage() {
	s.fmu.Lock()
	s.outage, s.failAfter = nil, nil
	s.fmu.Unlock()
}

// pendingOutage is an outage FailAfter starts once left more requests
// have been accepted.
type pendingOutage struct {
	left int
	f    Fault
}

// FailAfter lets the next n requests be accepted, then starts an outage
// with f (as StartOutage) that lasts until EndOutage or ClearFaults: for
// example FailAfter(50, Status(401)) is Castle after the API secret was
// rotated mid-stream. Requests refused meanwhile (422, 429, other faults)
// do not count. n <= 0 starts the outage at once.
func (s *Server) FailAfter(n int, f Fault) {
	if f.kind == 0 {
		return
	}
	if n <= 0 {
		s.StartOutage(f)
		return
	}
	s.fmu.Lock()
	s.failAfter = &pendingOutage{left: n, f: f}
	s.fmu.Unlock()
}

// acceptedOne counts an accepted request towards a pending FailAfter.
func (s *Server) acceptedOne() {
	s.fmu.Lock()
	if p := s.failAfter; p != nil {
		if p.left--; p.left <= 0 {
			f := p.f
			s.outage, s.failAfter = &f, nil
		}
	}
	s.fmu.Unlock()
}

// SetLatency delays every answer by d (0 for none).
func (s *Server) SetLatency(d time.Duration) {
	s.fmu.Lock()
	s.latency = max(d, 0)
	s.fmu.Unlock()
}

// ClearFaults removes every queued and rate-based fault, any outage
// (pending or under way) and the latency. Refused tokens and the secret
// stay as they are.
func (s *Server) ClearFaults() {
	s.fmu.Lock()
	s.outage, s.next, s.rates, s.latency, s.failAfter = nil, nil, nil, 0, nil
	s.fmu.Unlock()
}

func (s *Server) currentLatency() time.Duration {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return s.latency
}

// drawFault picks the fault for a request to path, if any.
func (s *Server) drawFault(path string) (Fault, bool) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.outage != nil && s.outage.appliesTo(path) {
		return *s.outage, true
	}
	for i := range s.next {
		q := &s.next[i]
		if !q.f.appliesTo(path) {
			continue
		}
		f := q.f
		if q.n--; q.n == 0 {
			s.next = slices.Delete(s.next, i, i+1)
		}
		return f, true
	}
	if len(s.rates) > 0 {
		u := s.rng.Float64()
		acc := 0.0
		for _, r := range s.rates {
			if !r.f.appliesTo(path) {
				continue
			}
			if acc += r.p; u < acc {
				return r.f, true
			}
		}
	}
	return Fault{}, false
}

// inject carries out f.
func (s *Server) inject(w http.ResponseWriter, r *http.Request, f Fault) {
	s.mu.Lock()
	s.faults[f.String()]++
	s.mu.Unlock()
	switch f.kind {
	case kindStatus:
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		typ, msg := errorFor(f.status)
		s.fail(w, f.status, typ, msg)
	case kindInvalidToken:
		s.fail(w, http.StatusUnprocessableEntity, "invalid_request_token", "The request token is invalid")
	case kindRespond:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(f.body)))
		w.WriteHeader(f.status)
		_, _ = io.WriteString(w, f.body)
		s.count(f.status)
	case kindHang:
		select {
		case <-r.Context().Done():
			s.count(0) // no answer
		case <-s.closing:
			s.fail(w, http.StatusServiceUnavailable, "service_unavailable", "Service unavailable")
		}
	case kindReset:
		s.count(0)
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler) // HTTP/2: resets the stream
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends RST
		}
		_ = conn.Close()
	}
}

// errorFor returns Castle's documented error type for code, and a message.
func errorFor(code int) (string, string) {
	switch code {
	case http.StatusBadRequest:
		return "bad_request", "Bad request"
	case http.StatusUnauthorized:
		return "unauthorized", "Unauthorized"
	case http.StatusForbidden:
		return "forbidden", "Service is not enabled for this account"
	case http.StatusNotFound:
		return "not_found", "Not found"
	case http.StatusRequestTimeout:
		return "request_timeout", "Request timeout"
	case http.StatusUnprocessableEntity:
		return "invalid_parameters", "One or more parameters are invalid"
	case http.StatusTooManyRequests:
		return "too_many_requests", "Rate limit exceeded"
	case http.StatusServiceUnavailable:
		return "service_unavailable", "Service unavailable"
	}
	if code >= 500 {
		return "server_error", "Internal server error"
	}
	return "error", http.StatusText(code)
}
