package destination

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/castle-destination/castle-destination/internal/rawjson"
	"github.com/castle-destination/castle-destination/internal/redact"
)

// sender makes one HTTP request to Castle and reports what came back. It
// owns no goroutines and decides nothing: scheduling, retries and
// classification belong to the Client.
type sender struct {
	rt       http.RoundTripper // nil when h1 is used
	h1       *h1
	base     string // the API base URL without a trailing slash
	timeout  time.Duration
	maxBody  int
	redactor *redactor
	// header is every request's header map, shared and read-only: a
	// RoundTripper must not modify a request (net/http's contract), and
	// building it per request cost a map of four entries each time.
	header http.Header
	// urls are the endpoints' URLs, parsed once and shared read-only
	// like header; nil for one that does not parse (Validate rules that
	// out), which send then parses per request to report.
	urls [Filter + 1]*url.URL
}

// apiBase is the base of Castle's paths in the API URL u: u without its
// trailing slashes and without Castle's version, which Castle's SDKs put
// in their base URL (https://api.castle.io/v1) and Endpoint.Path adds to
// every path.
func apiBase(u string) string {
	return strings.TrimSuffix(strings.TrimRight(u, "/"), "/v1")
}

// newSender returns a sender that makes its requests with rt or, when rt is
// nil, with its own HTTP/1.1 connections (h1), made by dial (nil: a
// net.Dialer).
func newSender(cfg Config, rt http.RoundTripper, dial dialFunc) (*sender, error) {
	basic := base64.StdEncoding.EncodeToString([]byte(":" + cfg.Secret))
	s := &sender{
		rt:       rt,
		base:     apiBase(cfg.URL),
		timeout:  cfg.Timeout,
		maxBody:  cfg.MaxErrorBody,
		redactor: newRedactor(cfg.Secret, basic),
		header: http.Header{
			"Authorization": {"Basic " + basic},
			"Content-Type":  {"application/json"},
			"Accept":        {"application/json"},
			"User-Agent":    {cfg.UserAgent},
		},
	}
	for ep := range s.urls {
		s.urls[ep], _ = url.Parse(s.base + Endpoint(ep).Path())
	}
	if rt == nil {
		h, err := newH1(s.base, s.header, nil, dial)
		if err != nil {
			return nil, fmt.Errorf("castle api url %s: %w", s.base, s.redact(err))
		}
		s.h1 = h
	}
	return s, nil
}

// response is what one request came to.
type response struct {
	code    int    // HTTP status; 0 when no answer came
	err     error  // transport error (redacted), nil when an answer came
	body    []byte // the answer's body, up to maxBody: a verdict or an error
	apiType string // Castle's error type, from a non-2xx JSON body
	hints   hints
	// canceled: the caller's context ended; timedOut: the attempt's own
	// deadline passed.
	canceled, timedOut bool
	latency            time.Duration
}

// send posts body to ep within the per-attempt timeout. keepBody says
// whether a 2xx body is wanted (a verdict); error bodies are always read.
func (s *sender) send(ctx context.Context, ep Endpoint, body []byte, keepBody bool) response {
	if s.h1 != nil {
		return s.sendH1(ctx, ep, body, keepBody)
	}
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	u := s.urls[ep]
	raw := ""
	if u == nil {
		raw = s.base + ep.Path()
	}
	req, err := http.NewRequestWithContext(actx, http.MethodPost, raw, bytes.NewReader(body))
	if err != nil {
		// Only a malformed URL gets here, and Validate rules that out.
		return response{err: s.redact(err)}
	}
	if u != nil {
		req.URL, req.Host = u, u.Host
	}
	req.Header = s.header

	start := time.Now()
	resp, err := s.rt.RoundTrip(req)
	if err != nil {
		// As http.Client would say it: Post "URL": cause.
		err = &url.Error{Op: "Post", URL: req.URL.String(), Err: err}
		return response{err: s.redact(err), latency: time.Since(start), canceled: ctx.Err() != nil,
			timedOut: errors.Is(actx.Err(), context.DeadlineExceeded)}
	}
	if resp.Body == nil { // a RoundTripper may leave it nil; http.Client would not
		resp.Body = http.NoBody
	}
	r := response{code: resp.StatusCode, hints: hintsOf(resp.Header, resp.StatusCode, time.Now())}
	ok := r.code >= 200 && r.code < 300
	var rerr error
	if !ok || keepBody {
		r.body, rerr = io.ReadAll(io.LimitReader(resp.Body, int64(s.bodyLimit(keepBody))))
	}
	// Drain a little, so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
	r.latency = time.Since(start)
	if rerr != nil {
		if ctx.Err() != nil {
			return response{err: s.redact(rerr), canceled: true, latency: r.latency}
		}
		if ok {
			// Delivered; the verdict is unreadable, which the caller counts.
			r.body = nil
			return r
		}
	}
	if !ok {
		r.apiType = s.apiType(r.body)
	}
	return r
}

// maxVerdictBody bounds a verdict's body: Castle's Risk and Filter
// answers echo the event's properties and user, so one with many long
// properties can pass MaxErrorBody (64 KiB), and a verdict cut short is
// not JSON and is lost.
const maxVerdictBody = 1 << 20

// bodyLimit is how much of an answer's body is read: a verdict's, when
// keepBody, up to maxVerdictBody; an error's up to MaxErrorBody.
func (s *sender) bodyLimit(keepBody bool) int {
	if keepBody {
		return max(s.maxBody, maxVerdictBody)
	}
	return s.maxBody
}

// sendH1 is send on the sender's own connections.
func (s *sender) sendH1(ctx context.Context, ep Endpoint, body []byte, keepBody bool) response {
	start := time.Now()
	a, err := s.h1.post(ctx, ep, body, s.timeout, s.bodyLimit(keepBody), keepBody)
	r := response{code: a.code, body: a.body, latency: time.Since(start)}
	ok := r.code >= 200 && r.code < 300
	if err != nil {
		canceled := ctx.Err() != nil
		if r.code == 0 || canceled {
			// As http.Client would say it: Post "URL": cause.
			err = &url.Error{Op: "Post", URL: s.h1.urls[ep], Err: err}
			return response{err: s.redact(err), latency: r.latency, canceled: canceled,
				timedOut: !canceled && isTimeout(err)}
		}
		if ok {
			// Delivered; the verdict is unreadable, which the caller counts.
			r.body = nil
		}
	}
	r.hints = readHints(a.retryAfter, a.rlReset, a.rlRemaining, r.code, time.Now())
	if !ok {
		r.apiType = s.apiType(r.body)
	}
	return r
}

// apiType is Castle's error type in body, the secret hidden: it names
// holds on /readyz and in the log, and a server may echo the credentials
// in it.
func (s *sender) apiType(body []byte) string {
	typ, _ := errorType(body)
	return s.redactor.String(typ)
}

// errorType reads Castle's {"type","message"} error body.
func errorType(body []byte) (typ, msg string) {
	var v struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", ""
	}
	return v.Type, v.Message
}

// apiError builds an *APIError from the answer to the request body sent.
func (s *sender) apiError(r response, sent []byte) *APIError {
	tok := sentToken(sent)
	// A server that echoes what it was sent puts the secret, the event's
	// request token or a header's credentials in its message, which goes
	// to logs and dead-letter headers. As JSON, their keys find them;
	// echoed in another form (an HTML page quoting the body), the token
	// is found by its value.
	hide := func(t string) string {
		t = redact.String(s.redactor.String(t))
		if len(tok) >= minTokenLen {
			t = strings.ReplaceAll(t, tok, "[redacted]")
		}
		return t
	}
	e := &APIError{StatusCode: r.code}
	if typ, msg := errorType(r.body); typ != "" || msg != "" {
		e.Type, e.Message = hide(typ), hide(msg)
		return e
	}
	// Hidden before it is cut: a cut through a token would leave its
	// start, which no longer matches.
	const maxRaw = 512
	t := hide(strings.TrimSpace(string(r.body)))
	if len(t) > maxRaw {
		t = t[:maxRaw]
		for !utf8.ValidString(t) {
			t = t[:len(t)-1]
		}
	}
	e.Message = strings.ToValidUTF8(t, "?")
	return e
}

// minTokenLen: a request token shorter than this is not searched for by
// its value. Castle's tokens are far longer; a shorter value is a junk one
// a misconfigured client sent ("token", "undefined"), no secret, and as
// common text its hiding would shred Castle's answer
// (invalid_request_[redacted]).
const minTokenLen = 16

// requestTokenKey is the raw key of a body's request token member.
var requestTokenKey = []byte(`"request_token"`)

// sentToken returns the request token of a body the mapping wrote (its own
// request_token member, not a property's), as written there; "" when
// there is none.
func sentToken(body []byte) string {
	v := rawjson.Member(body, requestTokenKey)
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return ""
	}
	return string(v[1 : len(v)-1])
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

func (s *sender) redact(err error) error {
	if err == nil || len(s.redactor.secrets) == 0 {
		return err
	}
	return &redactedError{err: err, r: s.redactor}
}
