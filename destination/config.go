package destination

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// DefaultURL is Castle's API base URL.
const DefaultURL = "https://api.castle.io"

// Defaults used by New for zero-valued fields.
const (
	DefaultConcurrency      = 1024
	DefaultTimeout          = 5 * time.Second
	DefaultMaxErrorBody     = 64 << 10
	DefaultUnreachableAfter = 3
	DefaultProbeMax         = 30 * time.Second
)

// Config configures a Client. Zero-valued fields take the defaults listed on
// each field.
type Config struct {
	// URL is the API base URL; requests go to URL + "/v1/log" (or
	// "/v1/risk", "/v1/filter"). A URL that ends in Castle's version, as
	// the base URL of Castle's SDKs does (https://api.castle.io/v1), is
	// taken without it.
	// Default DefaultURL. It must not carry credentials.
	URL string
	// Secret is the API secret, sent as the HTTP Basic auth password with
	// an empty user. Required. Never printed, logged or put in an error.
	Secret string
	// Concurrency is the ceiling on HTTP requests in flight across the
	// client. Below it the client finds its own limit (see the package
	// doc): it starts at 32 (or the ceiling, if lower), grows while
	// Castle's latency stays near the lowest seen and requests wait for
	// the limit, and shrinks when its load makes Castle push back (5xx,
	// timeouts, connection errors, account-wide 429s) or slow down.
	// Default 1024: at a round trip of 60 ms that allows about 17,000
	// requests per second, more than one replica's CPU sends, so the
	// ceiling does not bind where Castle is a network away. The client
	// opens connections and starts workers only as its limit uses them.
	Concurrency int
	// Timeout bounds one attempt (request and response headers and body).
	// Default 5 s. Castle's SDKs use 0.5–1.5 s for synchronous calls; an
	// asynchronous forwarder can wait longer, and a longer timeout means
	// fewer duplicate events from retried timeouts.
	Timeout time.Duration
	// Retry is the retry policy. The zero value means DefaultRetryPolicy().
	Retry RetryPolicy
	// UserRate is the per-user pacing. The zero value means
	// DefaultUserRate() (Castle's documented 6/s and 10 per 5 s).
	UserRate UserRate
	// UserAgent is sent as User-Agent. Default "castle-destination".
	UserAgent string
	// MaxErrorBody bounds how much of a non-2xx body is read. Default 64 KiB.
	MaxErrorBody int
	// UnreachableAfter is how many consecutive attempts must fail at the
	// transport level or with 5xx before Reachable reports an error.
	// Default 3.
	UnreachableAfter int
	// ProbeMax caps the wait between probe requests while delivery is held
	// by a systemic fault (a refused secret, a wrong URL, a TLS failure).
	// Probes start after Retry.Initial and double up to it. Default 30 s.
	ProbeMax time.Duration
	// Faults is told about systemic faults (a hold.Board, which also
	// serves /readyz). Nil: the client keeps its own, registered on its
	// registry.
	Faults Faults
}

// RetryPolicy is the retry schedule, as data.
//
// The wait before retry n (n = 1 after the first failure) is
// Initial·Multiplier^(n-1), capped at Max, then spread by ±Jitter (a
// fraction). A Retry-After header (delta-seconds or HTTP-date), or on a 429
// an X-RateLimit-Reset header, raises the wait; the result is again capped
// at Max. No attempt starts after MaxElapsed has passed since the event's
// first attempt: the last wait is shortened to end at that deadline, and if
// that attempt fails too the event is settled RetriesExhausted. The total
// time is thus bounded by MaxElapsed plus one attempt Timeout.
type RetryPolicy struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	Jitter     float64
	MaxElapsed time.Duration
}

// DefaultRetryPolicy returns 100 ms doubling to at most 10 s, ±20 % jitter,
// for at most 5 minutes per event. Five minutes rides out outages of a few
// minutes (the reliability tests use 30 s) without losing or dead-lettering
// anything; past it, events are dead-lettered as retries_exhausted so a
// long outage cannot stall the pipeline forever.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		Initial:    100 * time.Millisecond,
		Max:        10 * time.Second,
		Multiplier: 2,
		Jitter:     0.2,
		MaxElapsed: 5 * time.Minute,
	}
}

// Validate reports the first invalid field.
func (p RetryPolicy) Validate() error {
	switch {
	case p.Initial <= 0:
		return errors.New("retry: Initial must be > 0")
	case p.Max < p.Initial:
		return errors.New("retry: Max must be >= Initial")
	case p.Multiplier < 1:
		return errors.New("retry: Multiplier must be >= 1")
	case p.Jitter < 0 || p.Jitter > 1:
		return errors.New("retry: Jitter must be within [0, 1]")
	case p.MaxElapsed <= 0:
		return errors.New("retry: MaxElapsed must be > 0")
	}
	return nil
}

// RateWindow allows Requests requests in any interval of length Per.
type RateWindow struct {
	Requests int
	Per      time.Duration
}

// UserRate paces requests per Castle user id.
type UserRate struct {
	// Off disables per-user pacing.
	Off bool
	// Windows are the limits, all enforced (a sliding log of send times).
	Windows []RateWindow
	// Slack is added to every window's length, to absorb the jitter
	// between when the client sends and when Castle counts a request.
	Slack time.Duration
}

// DefaultUserRate returns Castle's documented per-user-id limits, 6
// requests per second and 10 per 5 seconds, with 100 ms of slack.
func DefaultUserRate() UserRate {
	return UserRate{
		Windows: []RateWindow{{Requests: 6, Per: time.Second}, {Requests: 10, Per: 5 * time.Second}},
		Slack:   100 * time.Millisecond,
	}
}

func (u UserRate) isZero() bool { return !u.Off && u.Windows == nil && u.Slack == 0 }

// maxWindowRequests bounds RateWindow.Requests: the sliding log keeps that
// many send times per user.
const maxWindowRequests = 1000

// maxWindowPer bounds a window's length with its slack: resting users keep
// their send times in milliseconds within restSpan (restTable).
const maxWindowPer = 24 * time.Hour

// Validate reports the first invalid field.
func (u UserRate) Validate() error {
	if u.Off {
		return nil
	}
	if len(u.Windows) == 0 {
		return errors.New("user rate: Windows is empty (set Off to disable pacing)")
	}
	for i, w := range u.Windows {
		if w.Requests < 1 || w.Requests > maxWindowRequests {
			return fmt.Errorf("user rate: Windows[%d].Requests must be within [1, %d]", i, maxWindowRequests)
		}
		if w.Per <= 0 || w.Per+max(u.Slack, 0) > maxWindowPer {
			return fmt.Errorf("user rate: Windows[%d].Per must be > 0 and, with Slack, at most %v", i, maxWindowPer)
		}
	}
	if u.Slack < 0 {
		return errors.New("user rate: Slack must be >= 0")
	}
	return nil
}

// withDefaults fills zero-valued fields.
func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Retry == (RetryPolicy{}) {
		c.Retry = DefaultRetryPolicy()
	}
	if c.UserRate.isZero() {
		c.UserRate = DefaultUserRate()
	}
	if c.UserAgent == "" {
		c.UserAgent = "castle-destination"
	}
	if c.MaxErrorBody == 0 {
		c.MaxErrorBody = DefaultMaxErrorBody
	}
	if c.UnreachableAfter == 0 {
		c.UnreachableAfter = DefaultUnreachableAfter
	}
	if c.ProbeMax == 0 {
		c.ProbeMax = DefaultProbeMax
	}
	return c
}

// Validate reports the first invalid setting, after defaults are applied.
// Its messages name the field and never contain the secret.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Secret == "" {
		return errors.New("castle api secret is empty")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		// url.Parse errors quote the input, which might hold a secret.
		return errors.New("castle api url: not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("castle api url: scheme must be http or https")
	}
	if u.Host == "" {
		return errors.New("castle api url: no host")
	}
	if u.User != nil {
		return errors.New("castle api url: must not contain credentials (the secret is sent as Basic auth)")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("castle api url: must not have a query or fragment")
	}
	if c.Concurrency < 1 {
		return errors.New("concurrency must be >= 1")
	}
	if c.Timeout < 0 {
		return errors.New("timeout must be > 0")
	}
	if c.MaxErrorBody < 0 {
		return errors.New("max error body must be >= 0")
	}
	if c.UnreachableAfter < 1 {
		return errors.New("unreachable after must be >= 1")
	}
	if c.ProbeMax < 0 {
		return errors.New("probe max must be > 0")
	}
	if err := c.Retry.Validate(); err != nil {
		return err
	}
	return c.UserRate.Validate()
}
