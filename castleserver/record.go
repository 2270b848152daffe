package castleserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"time"
)

// Received is one accepted request.
type Received struct {
	// Seq is the request's rank among accepted requests, from 1.
	Seq int64
	// Path is the endpoint: LogPath, RiskPath or FilterPath.
	Path string
	// Body is the request body as received.
	Body []byte
	// Response is the body of the answer: the verdict of a /v1/risk or
	// /v1/filter request, nil for /v1/log.
	Response []byte
	// Type, Status, Name and UserID are "type", "status", "name" and
	// "user.id".
	Type, Status, Name, UserID string
	// Properties are the event properties (nil if none).
	Properties map[string]any
	// CreatedAt is "created_at" (zero if absent).
	CreatedAt time.Time
	// ReceivedAt is when the server accepted the request.
	ReceivedAt time.Time
}

type record struct {
	seq        int64
	body       []byte
	resp       []byte
	p          parsed
	receivedAt time.Time
}

type waiter struct {
	n  int64
	ch chan struct{}
}

// record keeps an accepted request (and its answer's body, if any) and
// wakes the waiters it satisfies.
func (s *Server) record(body []byte, p parsed, resp []byte, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accepted++
	s.byPath[p.ep.path()]++
	if s.cfg.MaxRecords < 0 || len(s.records) < s.cfg.MaxRecords {
		s.records = append(s.records, record{seq: s.accepted, body: body, resp: resp, p: p, receivedAt: now})
	}
	if len(s.waiters) > 0 {
		kept := s.waiters[:0]
		for _, w := range s.waiters {
			if s.accepted >= w.n {
				close(w.ch)
			} else {
				kept = append(kept, w)
			}
		}
		s.waiters = kept
	}
}

// Accepted returns the accepted requests kept (see Config.MaxRecords), in
// the order accepted, whatever their path.
func (s *Server) Accepted() []Received { return s.accepted0("") }

// AcceptedOn returns the accepted requests kept for one path (LogPath,
// RiskPath or FilterPath), in the order accepted.
func (s *Server) AcceptedOn(path string) []Received { return s.accepted0(path) }

func (s *Server) accepted0(path string) []Received {
	s.mu.Lock()
	var recs []record
	for _, r := range s.records {
		if path == "" || r.p.ep.path() == path {
			recs = append(recs, r)
		}
	}
	s.mu.Unlock()
	out := make([]Received, len(recs))
	for i, r := range recs {
		out[i] = Received{
			Seq:        r.seq,
			Path:       r.p.ep.path(),
			Body:       r.body,
			Response:   r.resp,
			Type:       r.p.typ,
			Status:     r.p.status,
			Name:       r.p.name,
			UserID:     r.p.userID,
			CreatedAt:  r.p.createdAt,
			ReceivedAt: r.receivedAt,
		}
		var v struct {
			Properties map[string]any `json:"properties"`
		}
		if json.Unmarshal(r.body, &v) == nil {
			out[i].Properties = v.Properties
		}
	}
	return out
}

// Reset forgets the accepted requests and zeroes the statistics. Faults,
// refused tokens, the rate limiter's and the verdict rules' state are kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = nil
	s.requests, s.accepted = 0, 0
	s.byPath = make(map[string]int64)
	s.byStatus = make(map[int]int64)
	s.faults = make(map[string]int64)
}

// WaitFor blocks until at least n requests have been accepted (since the
// last Reset), or ctx ends.
func (s *Server) WaitFor(ctx context.Context, n int) error {
	s.mu.Lock()
	if s.accepted >= int64(n) {
		s.mu.Unlock()
		return nil
	}
	w := waiter{n: int64(n), ch: make(chan struct{})}
	s.waiters = append(s.waiters, w)
	s.mu.Unlock()
	select {
	case <-w.ch:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Stats counts what the server answered since the last Reset.
type Stats struct {
	// Requests is the number of requests answered (or dropped by a fault).
	Requests int64
	// Accepted is the number of requests accepted, kept or not.
	Accepted int64
	// ByPath counts accepted requests by path.
	ByPath map[string]int64
	// ByStatus counts answers by HTTP status; 0 counts requests that got no
	// answer (a Reset fault, or a Hang the client gave up on).
	ByStatus map[int]int64
	// Faults counts injected faults by name (Fault.String).
	Faults map[string]int64
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Requests: s.requests,
		Accepted: s.accepted,
		ByPath:   maps.Clone(s.byPath),
		ByStatus: maps.Clone(s.byStatus),
		Faults:   maps.Clone(s.faults),
	}
}

// WriteNDJSON writes the kept accepted requests to w, in the order
// accepted, one JSON object per line:
//
//	{"path":"/v1/risk","body":{...request body...},"response":{...verdict...}}
//
// "response" is there for /v1/risk and /v1/filter only. Bodies are
// compacted.
func (s *Server) WriteNDJSON(w io.Writer) error {
	s.mu.Lock()
	recs := append([]record(nil), s.records...)
	s.mu.Unlock()
	bw := bufio.NewWriter(w)
	var buf bytes.Buffer
	for _, r := range recs {
		buf.Reset()
		buf.WriteString(`{"path":"`)
		buf.WriteString(r.p.ep.path())
		buf.WriteString(`","body":`)
		if err := json.Compact(&buf, r.body); err != nil {
			return fmt.Errorf("castle server: record %d: %w", r.seq, err) // cannot happen: bodies were validated
		}
		if r.resp != nil {
			buf.WriteString(`,"response":`)
			if err := json.Compact(&buf, r.resp); err != nil {
				return fmt.Errorf("castle server: record %d: %w", r.seq, err)
			}
		}
		buf.WriteString("}\n")
		if _, err := bw.Write(buf.Bytes()); err != nil {
			return err
		}
	}
	return bw.Flush()
}
