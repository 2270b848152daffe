package castleserver

import (
	"net"
	"net/http"
	"strconv"
	"time"
)

type faultKind uint8

const (
	kindStatus faultKind = iota + 1
	kindHang
	kindReset
)

// Fault is an injected failure. Build one with Status, TooManyRequests,
// Hang or Reset. Faulted requests are never recorded as accepted.
type Fault struct {
	kind       faultKind
	status     int
	retryAfter string
}

// Status answers with code and a Castle-style JSON error body (for
// example 500 server_error, 503 service_unavailable, 400 bad_request).
func Status(code int) Fault { return Fault{kind: kindStatus, status: code} }

// TooManyRequests answers 429 with the given Retry-After value: delta
// seconds ("2") or an HTTP-date; "" sends none.
func TooManyRequests(retryAfter string) Fault {
	return Fault{kind: kindStatus, status: http.StatusTooManyRequests, retryAfter: retryAfter}
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
// "status_503", "hang", "reset".
func (f Fault) String() string {
	switch f.kind {
	case kindStatus:
		return "status_" + strconv.Itoa(f.status)
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

// FailNext makes the next n requests to /v1/log fail with f, after any
// faults already queued. Deterministic.
func (s *Server) FailNext(n int, f Fault) {
	if n <= 0 || f.kind == 0 {
		return
	}
	s.fmu.Lock()
	s.next = append(s.next, queuedFault{f: f, n: n})
	s.fmu.Unlock()
}

// FailRate makes each request to /v1/log fail with f with probability p,
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

// StartOutage makes every request to /v1/log fail with f (typically
// Status(503) or Reset()) until EndOutage. An outage takes precedence over
// queued and rate-based faults.
func (s *Server) StartOutage(f Fault) {
	s.fmu.Lock()
	s.outage = &f
	s.fmu.Unlock()
}

// EndOutage ends an outage.
func (s *Server) EndOutage() {
	s.fmu.Lock()
	s.outage = nil
	s.fmu.Unlock()
}

// SetLatency delays every answer by d (0 for none).
func (s *Server) SetLatency(d time.Duration) {
	s.fmu.Lock()
	s.latency = max(d, 0)
	s.fmu.Unlock()
}

// ClearFaults removes every queued and rate-based fault, any outage and
// the latency.
func (s *Server) ClearFaults() {
	s.fmu.Lock()
	s.outage, s.next, s.rates, s.latency = nil, nil, nil, 0
	s.fmu.Unlock()
}

func (s *Server) currentLatency() time.Duration {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return s.latency
}

// drawFault picks the fault for this request, if any.
func (s *Server) drawFault() (Fault, bool) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	if s.outage != nil {
		return *s.outage, true
	}
	if len(s.next) > 0 {
		q := &s.next[0]
		f := q.f
		if q.n--; q.n == 0 {
			s.next = s.next[1:]
		}
		return f, true
	}
	if len(s.rates) > 0 {
		u := s.rng.Float64()
		acc := 0.0
		for _, r := range s.rates {
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
