// Package destination delivers events to Castle's API: /v1/log for every
// event, and /v1/risk or /v1/filter for events sent for scoring, whose
// verdict it hands back. destination/CASTLE_API.md describes the contract
// with Castle that this package relies on.
//
// A Client schedules and a sender makes the requests. The Client keeps each
// user's events in order (one lane per user id, served by one worker at a
// time), paces each user to Castle's per-user limits (6 requests per second
// and 10 per 5 seconds, also read from X-RateLimit-* headers), retries
// 408, 429, 5xx, timeouts and connection errors with capped exponential
// backoff and jitter, honouring Retry-After, for a bounded time, and
// settles every event exactly once: Delivered, Rejected (the event itself is
// at fault), RetriesExhausted, or Canceled (not delivered as far as the
// client knows).
//
// The client finds its own concurrency: how many requests it keeps in
// flight, up to Config.Concurrency (CASTLE_CONCURRENCY), which is a ceiling
// rather than a setting to tune. It starts at 32 and doubles every round
// trip while requests wait for the limit and Castle's latency stays near
// the lowest it has seen; after the first sign of congestion it grows by
// one per round trip, and faster again once past where congestion was.
// It shrinks by a fifth when a clearly larger share of requests than
// usual is pushed back (an account-wide 429, 5xx, 408, a timeout, a
// connection error), and by a tenth when their latency rises past 1.5
// times that low plus 2 ms. Having halved the limit, it checks that the
// cuts helped: if the goodput fell with the limit, the limit was not the
// bottleneck (Castle got slower, or fails a share of requests whatever the
// load), so the new latency or failure rate is taken as normal and the
// limit goes back up. A 429 for one user's own budget is not congestion
// (pacing handles it), and neither are the holds below. The gauge
// castle_destination_castle_concurrency_limit shows the limit.
//
// Two things hold every request rather than fail events one by one:
//
//   - A systemic fault: 401 or 403 (the API secret), 404 or a redirect (a
//     CASTLE_API_URL with no Castle API behind it), a TLS failure. Every
//     event would fail the same way, so none is settled: the client reports
//     the fault (Config.Faults), sends one probe request at a capped
//     backoff, and resumes by itself once Castle accepts again.
//   - An account-wide 429: one that Castle does not mark as the user's own
//     budget (X-RateLimit-Remaining: 0), for a user the client's pacing
//     counts well within the limits, or 429s for several users at once.
//     Every request waits for the largest Retry-After seen, then one probe.
//
// The sender speaks HTTP/1.1 over connections of the client's own (h1.go):
// one per request in flight, kept alive, each exchange written and read on
// the worker's goroutine, which is far cheaper in CPU than net/http's
// Transport with a thousand connections in use. A configured proxy, or an
// http.Client given to New, brings net/http's Transport back.
//
// A scored event whose request token Castle refuses (422
// invalid_request_token), or whose token ages past Score.Until while it
// waits or retries, goes to /v1/log instead, counted by reason.
//
// What it does not do: decide what to send (mapping), batch input or commit
// offsets (pipeline), write dead letters or verdicts (the caller, from each
// Result). Castle has no idempotency key, so a retry after a timeout can
// deliver an event twice; retries are counted.
package destination
