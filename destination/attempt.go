package destination

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// outcome is what one HTTP attempt came to.
type outcome struct {
	class class // metric class
	code  int   // HTTP status, 0 if none
	err   error // nil on 2xx; *APIError or a (redacted) transport error
	// cause is the retry cause (classNone when not retryable).
	cause class
	// retryAfter is the server's requested wait (Retry-After, or on a 429
	// X-RateLimit-Reset); hasRetryAfter says whether one was given.
	retryAfter    time.Duration
	hasRetryAfter bool
	// exhaustedFor is, when X-RateLimit-Remaining was 0, how long until
	// X-RateLimit-Reset; 0 otherwise.
	exhaustedFor time.Duration
	latency      time.Duration
}

// Response headers read on every answer, spelled the way net/http stores
// them (canonical), so that Header.Get does not rewrite the name, and
// allocate, on each call.
const (
	hdrRetryAfter         = "Retry-After"
	hdrRateLimitReset     = "X-Ratelimit-Reset"
	hdrRateLimitRemaining = "X-Ratelimit-Remaining"
)

// attempt sends body once, within the per-attempt timeout.
func (c *Client) attempt(ctx context.Context, body []byte) outcome {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		// Only a malformed endpoint gets here, and Validate rules that out.
		return outcome{class: classConnError, cause: classConnError, err: c.redact(err)}
	}
	h := make(http.Header, 4)
	h["Authorization"] = c.hdrAuth
	h["Content-Type"] = c.hdrJSON
	h["Accept"] = c.hdrJSON
	h["User-Agent"] = c.hdrUA
	req.Header = h

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		o := outcome{latency: time.Since(start), err: c.redact(err)}
		switch {
		case ctx.Err() != nil:
			o.class = classCanceled
		case errors.Is(actx.Err(), context.DeadlineExceeded) || isTimeout(err):
			o.class, o.cause = classTimeout, classTimeout
		default:
			o.class, o.cause = classConnError, classConnError
		}
		return o
	}
	o := outcome{code: resp.StatusCode}
	now := time.Now()
	if ra, ok := parseRetryAfter(resp.Header.Get(hdrRetryAfter), now); ok {
		o.retryAfter, o.hasRetryAfter = ra, true
	}
	reset, hasReset := parseRateLimitReset(resp.Header.Get(hdrRateLimitReset), now)
	if rem, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get(hdrRateLimitRemaining))); err == nil && rem <= 0 && hasReset {
		o.exhaustedFor = reset
	}

	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		o.class = class2xx
		// Drain so the connection is reused; the body does not matter.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, int64(c.cfg.MaxErrorBody)))
		_ = resp.Body.Close()
		o.latency = time.Since(start)
		return o
	case code == http.StatusTooManyRequests:
		o.class, o.cause = class429, class429
		if !o.hasRetryAfter && hasReset {
			o.retryAfter, o.hasRetryAfter = reset, true
		}
	case code == http.StatusRequestTimeout:
		o.class, o.cause = class4xx, classTimeout
	case code >= 400 && code < 500:
		o.class = class4xx
	case code >= 500 && code < 600:
		o.class, o.cause = class5xx, class5xx
	default: // 1xx, 3xx (redirects are not followed) and nonsense
		o.class, o.cause = classOther, classOther
	}
	b, rerr := io.ReadAll(io.LimitReader(resp.Body, int64(c.cfg.MaxErrorBody)))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	o.latency = time.Since(start)
	if rerr != nil && ctx.Err() != nil {
		o.class, o.cause = classCanceled, classNone
		o.err = c.redact(rerr)
		return o
	}
	o.err = c.apiError(code, b)
	return o
}

// apiError builds an *APIError from a Castle error body.
func (c *Client) apiError(code int, body []byte) *APIError {
	e := &APIError{StatusCode: code}
	var v struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &v) == nil && (v.Type != "" || v.Message != "") {
		e.Type, e.Message = v.Type, v.Message
	} else {
		const maxRaw = 512
		s := strings.TrimSpace(string(body))
		if len(s) > maxRaw {
			s = s[:maxRaw]
			for !utf8.ValidString(s) {
				s = s[:len(s)-1]
			}
		}
		e.Message = strings.ToValidUTF8(s, "?")
	}
	e.Type = c.redactString(e.Type)
	e.Message = c.redactString(e.Message)
	return e
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
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

// redactor hides the secret, and the Basic credentials derived from it, in
// text. The URL never carries credentials (Validate), so transport errors
// should not contain them either; this is defence in depth, also against a
// server that echoes what it was sent.
type redactor struct{ secrets []string }

// minRedactLen: shorter secrets are not searched for (they would mangle
// every message; Castle's secrets are far longer).
const minRedactLen = 4

func newRedactor(secret, basic string) *redactor {
	if len(secret) < minRedactLen {
		return &redactor{}
	}
	return &redactor{secrets: []string{basic, secret}}
}

func (r *redactor) String(s string) string {
	for _, x := range r.secrets {
		s = strings.ReplaceAll(s, x, "[REDACTED]")
	}
	return s
}

// redactedError hides the secret in an error's text; errors.Is/As still
// see the original.
type redactedError struct {
	err error
	r   *redactor
}

func (e *redactedError) Error() string { return e.r.String(e.err.Error()) }

func (e *redactedError) Unwrap() error { return e.err }

func (c *Client) redact(err error) error {
	if err == nil || len(c.redactor.secrets) == 0 {
		return err
	}
	return &redactedError{err: err, r: c.redactor}
}

func (c *Client) redactString(s string) string { return c.redactor.String(s) }
