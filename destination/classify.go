package destination

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/castle-destination/castle-destination/hold"
	"github.com/castle-destination/castle-destination/internal/tlserr"
)

// action is what the client does after one attempt.
type action uint8

const (
	actDeliver  action = iota + 1 // settled Delivered
	actRetry                      // retried after a backoff, within the retry budget
	actReject                     // settled Rejected: retrying cannot help this event
	actHold                       // a systemic fault: hold every event, probe until it clears
	actFallback                   // scoring refused the request token: send to /v1/log instead
	actCancel                     // the caller's context ended
)

// decision is what one attempt's outcome means.
type decision struct {
	class class  // the metric class of the attempt
	act   action // what to do next
	cause class  // actRetry: the retry cause label
	hold  string // actHold: the hold class (hold.Auth, hold.Route, hold.TLS)
}

// classify decides what an attempt came to, from what the attempt saw and
// nothing else: ep is the endpoint called, code the HTTP status (0 when no
// answer came), apiType Castle's error type from the body, err the
// transport error (nil when an answer came), canceled whether the caller's
// context had ended, timedOut whether the attempt's own deadline passed.
//
// The rules: 2xx is delivered. 401 and 403 (the secret), a proxy's 407
// (its credentials), 404 (no such API route: the URL), redirects (a URL
// Castle does not serve) and a host name that does not exist (the URL) are
// systemic, as is a TLS failure: every event would fail the same way, so
// delivery holds. A 422 invalid_request_token from /v1/risk or /v1/filter
// falls back to /v1/log (from /v1/log, a rejection that step turns into
// the same request without its token). 408, 429, 5xx, timeouts and connection errors are
// retried. Any other 4xx is rejected: the event itself is at fault.
func classify(ep Endpoint, code int, apiType string, err error, canceled, timedOut bool) decision {
	if err != nil {
		switch {
		case canceled:
			return decision{class: classCanceled, act: actCancel}
		case timedOut || isTimeout(err):
			return decision{class: classTimeout, act: actRetry, cause: classTimeout}
		case tlserr.Is(err):
			return decision{class: classConnError, act: actHold, hold: hold.TLS}
		case noSuchHost(err):
			return decision{class: classConnError, act: actHold, hold: hold.Route}
		case errors.Is(err, errProxyAuth):
			return decision{class: classConnError, act: actHold, hold: hold.Auth}
		default:
			return decision{class: classConnError, act: actRetry, cause: classConnError}
		}
	}
	switch {
	case code >= 200 && code < 300:
		return decision{class: class2xx, act: actDeliver}
	case code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusProxyAuthRequired:
		return decision{class: class4xx, act: actHold, hold: hold.Auth}
	case code == http.StatusNotFound:
		return decision{class: class4xx, act: actHold, hold: hold.Route}
	case code >= 300 && code < 400:
		return decision{class: classOther, act: actHold, hold: hold.Route}
	case code == http.StatusRequestTimeout:
		return decision{class: class4xx, act: actRetry, cause: classTimeout}
	case code == http.StatusTooManyRequests:
		return decision{class: class429, act: actRetry, cause: class429}
	case code == http.StatusUnprocessableEntity && apiType == "invalid_request_token" && ep != Log:
		return decision{class: class4xx, act: actFallback}
	case code >= 400 && code < 500:
		return decision{class: class4xx, act: actReject}
	case code >= 500 && code < 600:
		return decision{class: class5xx, act: actRetry, cause: class5xx}
	default: // 1xx and nonsense
		return decision{class: classOther, act: actRetry, cause: classOther}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// noSuchHost reports whether err says the host name does not exist
// (NXDOMAIN): a wrong CASTLE_API_URL, not a passing fault. A resolver that
// fails or times out is a connection error, retried.
func noSuchHost(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// Response headers read on every answer, spelled the way net/http stores
// them (canonical), so that Header.Get does not rewrite the name, and
// allocate, on each call.
const (
	hdrRetryAfter         = "Retry-After"
	hdrRateLimitReset     = "X-Ratelimit-Reset"
	hdrRateLimitRemaining = "X-Ratelimit-Remaining"
)

// hints are the server's timing advice on one answer.
type hints struct {
	// retryAfter is the requested wait (Retry-After, or on a 429
	// X-RateLimit-Reset); has says whether one was given.
	retryAfter time.Duration
	has        bool
	// exhaustedFor is, when X-RateLimit-Remaining was 0, how long until
	// X-RateLimit-Reset; 0 otherwise: the user's budget is spent.
	exhaustedFor time.Duration
	// remaining is X-RateLimit-Remaining, -1 when absent.
	remaining int
}

// hintsOf is readHints of the headers in h.
func hintsOf(h http.Header, code int, now time.Time) hints {
	return readHints(h.Get(hdrRetryAfter), h.Get(hdrRateLimitReset), h.Get(hdrRateLimitRemaining), code, now)
}

// readHints reads the rate-limit headers of an answer with status code:
// the values of Retry-After, X-RateLimit-Reset and X-RateLimit-Remaining.
func readHints(retryAfter, rateLimitReset, rateLimitRemaining string, code int, now time.Time) hints {
	var x hints
	x.retryAfter, x.has = parseRetryAfter(retryAfter, now)
	reset, hasReset := parseRateLimitReset(rateLimitReset, now)
	x.remaining = -1
	// Not Atoi on an absent header: its error allocates, on every answer
	// of a server that sends no rate-limit headers.
	if v := strings.TrimSpace(rateLimitRemaining); v != "" {
		if rem, err := strconv.Atoi(v); err == nil {
			x.remaining = rem
			if rem <= 0 && hasReset {
				x.exhaustedFor = reset
			}
		}
	}
	if code == http.StatusTooManyRequests && !x.has && hasReset {
		x.retryAfter, x.has = reset, true
	}
	return x
}

// maxHint bounds parsed server hints, so absurd values cannot overflow.
const maxHint = 24 * time.Hour

// parseRetryAfter reads a Retry-After value: delta-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return min(time.Duration(min(secs, int64(maxHint/time.Second)))*time.Second, maxHint), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxHint), true
	}
	return 0, false
}

// parseRateLimitReset reads X-RateLimit-Reset: seconds until the window
// resets (what Castle's API description says). Values that can only be a
// Unix time (>= 1e9) are read as one, as some APIs send that instead.
func parseRateLimitReset(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f != f {
		return 0, false
	}
	if f >= 1e9 {
		if f > 1e12 { // not a plausible Unix time in seconds
			return 0, false
		}
		sec := int64(f)
		t := time.Unix(sec, int64((f-float64(sec))*1e9))
		return min(max(t.Sub(now), 0), maxHint), true
	}
	if f > maxHint.Seconds() {
		return maxHint, true
	}
	return time.Duration(f * float64(time.Second)), true
}
