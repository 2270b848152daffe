package destination

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/castle-destination/castle-destination/hold"
)

// Header.Get finds any spelling, but only a canonical one spares it a
// rewrite and an allocation on every answer.
func TestResponseHeaderNamesAreCanonical(t *testing.T) {
	for _, h := range []string{hdrRetryAfter, hdrRateLimitReset, hdrRateLimitRemaining} {
		if c := http.CanonicalHeaderKey(h); c != h {
			t.Errorf("%q is spelled %q in net/http's header maps", h, c)
		}
	}
}

// dnsErr is how a failed lookup of the API's host reaches the client.
func dnsErr(e *net.DNSError) error {
	return &url.Error{Op: "Post", URL: "https://castle.test/v1/log", Err: &net.OpError{Op: "dial", Net: "tcp", Err: e}}
}

func TestClassify(t *testing.T) {
	tlsErr := &url.Error{Op: "Post", URL: "https://castle.test/v1/log", Err: x509.UnknownAuthorityError{}}
	connErr := &url.Error{Op: "Post", URL: "https://castle.test/v1/log", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}
	tests := []struct {
		name     string
		ep       Endpoint
		code     int
		apiType  string
		err      error
		canceled bool
		timedOut bool
		want     decision
	}{
		{name: "200", code: 200, want: decision{class: class2xx, act: actDeliver}},
		{name: "201 risk", ep: Risk, code: 201, want: decision{class: class2xx, act: actDeliver}},
		{name: "204", code: 204, want: decision{class: class2xx, act: actDeliver}},
		{name: "301", code: 301, want: decision{class: classOther, act: actHold, hold: hold.Route}},
		{name: "400", code: 400, apiType: "bad_request", want: decision{class: class4xx, act: actReject}},
		{name: "401", code: 401, apiType: "unauthorized", want: decision{class: class4xx, act: actHold, hold: hold.Auth}},
		{name: "403", code: 403, apiType: "forbidden", want: decision{class: class4xx, act: actHold, hold: hold.Auth}},
		{name: "404", code: 404, apiType: "route_not_found", want: decision{class: class4xx, act: actHold, hold: hold.Route}},
		{name: "408", code: 408, want: decision{class: class4xx, act: actRetry, cause: classTimeout}},
		{name: "413", code: 413, want: decision{class: class4xx, act: actReject}},
		{name: "422 invalid_parameters", ep: Risk, code: 422, apiType: "invalid_parameters", want: decision{class: class4xx, act: actReject}},
		{name: "422 token on risk", ep: Risk, code: 422, apiType: "invalid_request_token", want: decision{class: class4xx, act: actFallback}},
		{name: "422 token on filter", ep: Filter, code: 422, apiType: "invalid_request_token", want: decision{class: class4xx, act: actFallback}},
		{name: "422 token on log", ep: Log, code: 422, apiType: "invalid_request_token", want: decision{class: class4xx, act: actReject}},
		{name: "429", code: 429, want: decision{class: class429, act: actRetry, cause: class429}},
		{name: "500", code: 500, want: decision{class: class5xx, act: actRetry, cause: class5xx}},
		{name: "503", code: 503, want: decision{class: class5xx, act: actRetry, cause: class5xx}},
		{name: "102", code: 102, want: decision{class: classOther, act: actRetry, cause: classOther}},
		{name: "canceled", err: context.Canceled, canceled: true, want: decision{class: classCanceled, act: actCancel}},
		{name: "attempt timeout", err: context.DeadlineExceeded, timedOut: true, want: decision{class: classTimeout, act: actRetry, cause: classTimeout}},
		{name: "tls", err: tlsErr, want: decision{class: classConnError, act: actHold, hold: hold.TLS}},
		{name: "tls record header", err: tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, want: decision{class: classConnError, act: actHold, hold: hold.TLS}},
		{name: "connection refused", err: connErr, want: decision{class: classConnError, act: actRetry, cause: classConnError}},
		{name: "407 from a plain-HTTP proxy", code: 407, want: decision{class: class4xx, act: actHold, hold: hold.Auth}},
		{name: "407 to CONNECT", err: &url.Error{Op: "Post", URL: "https://castle.test/v1/log", Err: &net.OpError{Op: "proxyconnect", Net: "tcp", Err: errProxyAuth}},
			want: decision{class: classConnError, act: actHold, hold: hold.Auth}},
		{name: "no such host", err: dnsErr(&net.DNSError{Err: "no such host", Name: "castle.test", IsNotFound: true}),
			want: decision{class: classConnError, act: actHold, hold: hold.Route}},
		{name: "resolver failing", err: dnsErr(&net.DNSError{Err: "server misbehaving", Name: "castle.test", IsTemporary: true}),
			want: decision{class: classConnError, act: actRetry, cause: classConnError}},
		{name: "resolver timing out", err: dnsErr(&net.DNSError{Err: "i/o timeout", Name: "castle.test", IsTimeout: true}),
			want: decision{class: classTimeout, act: actRetry, cause: classTimeout}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.ep, tt.code, tt.apiType, tt.err, tt.canceled, tt.timedOut); got != tt.want {
				t.Errorf("classify = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadHints(t *testing.T) {
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	h := http.Header{}
	h.Set("X-RateLimit-Remaining", "0")
	h.Set("X-RateLimit-Reset", "3")
	x := hintsOf(h, 429, now)
	if !x.has || x.retryAfter != 3*time.Second || x.exhaustedFor != 3*time.Second || x.remaining != 0 {
		t.Errorf("429 with reset: %+v", x)
	}
	h.Set("Retry-After", "7")
	if x := hintsOf(h, 429, now); x.retryAfter != 7*time.Second {
		t.Errorf("Retry-After wins: %+v", x)
	}
	if x := hintsOf(http.Header{}, 204, now); x.has || x.remaining != -1 || x.exhaustedFor != 0 {
		t.Errorf("no headers: %+v", x)
	}
	// Read on every answer: without hints, or with the usual ones, it
	// allocates nothing.
	usual := http.Header{}
	usual.Set("X-RateLimit-Remaining", "4")
	usual.Set("X-RateLimit-Reset", "1")
	for _, h := range []http.Header{{}, usual} {
		if n := testing.AllocsPerRun(100, func() { hintsOf(h, 204, now) }); n != 0 {
			t.Errorf("hintsOf(%v) allocates %v times", h, n)
		}
	}
}
