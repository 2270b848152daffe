package destination

import (
	"fmt"
	"strconv"
	"time"
)

// Endpoint is one of Castle's event APIs.
type Endpoint uint8

// The endpoints.
const (
	Log    Endpoint = iota // POST /v1/log: recorded, no verdict
	Risk                   // POST /v1/risk: scored, a user is known; answers a verdict
	Filter                 // POST /v1/filter: scored, before or without a user; answers a verdict
)

// String returns "log", "risk" or "filter".
func (e Endpoint) String() string {
	switch e {
	case Risk:
		return "risk"
	case Filter:
		return "filter"
	default:
		return "log"
	}
}

// Path returns the endpoint's path under the API base URL.
func (e Endpoint) Path() string { return "/v1/" + e.String() }

// Event is one Castle event to deliver: a /v1/log request, and optionally
// a scoring request tried first.
type Event struct {
	// Body is the /v1/log JSON body, ready to send. The client treats it as
	// read-only and may send it more than once (retries), or a copy of it
	// without its request token (TokenUntil).
	Body []byte
	// UserID is the Castle user.id: the per-user pacing and ordering key.
	// "" means no per-user limit and no ordering.
	UserID string
	// Type is a bounded metric label chosen by the caller ("page",
	// "track"). The client keeps at most maxTypeLabels distinct values and
	// folds the rest into "other".
	Type string
	// TokenUntil, when set, is when the request token in Body expires at
	// Castle: a /v1/log request sent after it (retries or a hold outlasted
	// the token) leaves the token out, counted in tokens_expired_total.
	TokenUntil time.Time
	// Score, when set, asks for a verdict: the event goes to Score.Endpoint
	// first, and to /v1/log with Body only if Castle refuses its request
	// token or the token ages out before it can be sent.
	Score *Score
}

// Score is a scoring request (Castle's Risk or Filter API).
type Score struct {
	Endpoint Endpoint // Risk or Filter
	// Body is the scoring request's body. Nil: the request token aged out
	// before the event was read; the event goes to /v1/log at once,
	// counted as a token_aged fallback.
	Body []byte
	// Until is the last moment the request is sent for scoring: its
	// request token must still be fresh at Castle. Past it the event falls
	// back to /v1/log (fallback reason "token_aged").
	Until time.Time
}

// Fallback reasons: why a scoring request went to /v1/log instead.
const (
	FallbackTokenRefused = "token_refused" // Castle answered 422 invalid_request_token
	FallbackTokenAged    = "token_aged"    // the token aged past Score.Until while waiting or retrying
)

// Status is how an event was settled.
type Status uint8

// The settled states of an event.
const (
	// Delivered: Castle answered 2xx.
	Delivered Status = iota + 1
	// Rejected: Castle answered a 4xx that says the event itself is at
	// fault (not 401, 403, 404, 408 or 429); retrying cannot help.
	// Dead-letter reason "rejected".
	Rejected
	// RetriesExhausted: retryable failures (429, 5xx, 408, timeouts,
	// connection errors) went on past the retry budget. Dead-letter reason
	// "retries_exhausted".
	RetriesExhausted
	// Canceled: the context ended (or the client was closed) before the
	// event was settled. The event was NOT delivered as far as the client
	// knows; it must be neither dead-lettered nor committed.
	Canceled
)

// String returns the bounded label of s: "delivered", "rejected",
// "retries_exhausted" or "canceled".
func (s Status) String() string {
	switch s {
	case Delivered:
		return "delivered"
	case Rejected:
		return "rejected"
	case RetriesExhausted:
		return "retries_exhausted"
	case Canceled:
		return "canceled"
	default:
		return "status(" + strconv.Itoa(int(s)) + ")"
	}
}

// Result says how one event was settled.
type Result struct {
	Status Status
	// Attempts is the number of HTTP requests started for the event.
	Attempts int
	// Code is the last HTTP status received (0 if none).
	Code int
	// Err is nil when Delivered. For Rejected it is an *APIError carrying
	// Castle's {"type","message"} body. For RetriesExhausted it is the last
	// failure (an *APIError or a transport error). For Canceled it wraps
	// the context's error. It never contains the API secret.
	Err error
	// Endpoint is where the event was last sent: Log, or the scoring
	// endpoint of Event.Score unless it fell back.
	Endpoint Endpoint
	// Verdict is the body of a Delivered scoring answer (nil otherwise,
	// and nil when the body could not be read).
	Verdict []byte
	// Fallback is why a scored event went to /v1/log ("" if it did not).
	Fallback string
}

// APIError is a non-2xx answer from Castle, with its JSON error body.
type APIError struct {
	StatusCode int
	// Type and Message come from Castle's error body {"type","message"}.
	// When the body is not that JSON object, Type is empty and Message
	// holds the start of the raw body.
	Type    string
	Message string
}

// Error formats the status and Castle's error; it never includes the
// secret (bodies are scrubbed of it when read).
func (e *APIError) Error() string {
	switch {
	case e.Type != "" && e.Message != "":
		return fmt.Sprintf("castle: HTTP %d %s: %s", e.StatusCode, e.Type, e.Message)
	case e.Type != "":
		return fmt.Sprintf("castle: HTTP %d %s", e.StatusCode, e.Type)
	case e.Message != "":
		return fmt.Sprintf("castle: HTTP %d: %s", e.StatusCode, e.Message)
	default:
		return fmt.Sprintf("castle: HTTP %d", e.StatusCode)
	}
}
