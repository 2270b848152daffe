// Package verdict is the record of what Castle's Risk or Filter API said
// about one event: Castle's 201 body read into a Response (Parse), the
// verdict record written to the verdict topic (Verdict, its JSON value and
// its Kafka key), and the verdict metrics (Metrics).
//
// A verdict record is one JSON object, its fields in this order, each left
// out when there is nothing to put in it (Castle did not return it, or the
// event had none):
//
//	message_id, user_id, anonymous_id   the Segment message's ids
//	event {type, status, name}          the Castle event as sent
//	created_at, scored_at               the event's time; when Castle answered (RFC 3339, UTC)
//	endpoint                            "risk" or "filter"
//	castle_event_id                     Castle's event id ("id")
//	policy {action, name, id, revision_id}
//	risk                                Castle's risk (0 is a value, not an absence)
//	scores {kind: number}               Castle's scores {kind: {score}} flattened
//	signals [names]                     Castle's signal names, sorted
//	device {fingerprint}
//	source {topic, partition, offset}   the Kafka record the event came from
//
// A verdict never carries the request token, the API secret or request
// headers: Parse reads only the fields above out of Castle's body, whatever
// else it echoes.
//
// The package does no I/O: writing records to Kafka, and deciding when an
// event is scored, belong to its callers.
package verdict

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/castle-destination/castle-destination/internal/jsonw"
)

// The values of Verdict.Endpoint.
const (
	EndpointRisk   = "risk"
	EndpointFilter = "filter"
)

// Verdict is one verdict record. Encode it with AppendJSON (or
// encoding/json, which calls it); decode it with encoding/json.
type Verdict struct {
	MessageID     string             `json:"message_id,omitempty"`
	UserID        string             `json:"user_id,omitempty"`
	AnonymousID   string             `json:"anonymous_id,omitempty"`
	Event         Event              `json:"event,omitzero"`
	CreatedAt     time.Time          `json:"created_at,omitzero"`
	ScoredAt      time.Time          `json:"scored_at,omitzero"`
	Endpoint      string             `json:"endpoint,omitempty"`
	CastleEventID string             `json:"castle_event_id,omitempty"`
	Policy        *Policy            `json:"policy,omitempty"`
	Risk          *float64           `json:"risk,omitempty"`
	Scores        map[string]float64 `json:"scores,omitempty"`
	Signals       []string           `json:"signals,omitempty"`
	Device        Device             `json:"device,omitzero"`
	Source        *Source            `json:"source,omitempty"`
}

// Event is the Castle event that was scored, as it was sent.
type Event struct {
	Type   string `json:"type,omitempty"`
	Status string `json:"status,omitempty"`
	Name   string `json:"name,omitempty"`
}

// Policy is the policy Castle applied.
type Policy struct {
	Action     string `json:"action,omitempty"`
	Name       string `json:"name,omitempty"`
	ID         string `json:"id,omitempty"`
	RevisionID string `json:"revision_id,omitempty"`
}

// Device is the device Castle identified.
type Device struct {
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Source is the Kafka record the event came from.
type Source struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// SetResponse copies what Castle returned into v: its event id, policy,
// risk, scores, signals and device.
func (v *Verdict) SetResponse(r Response) {
	v.CastleEventID = r.ID
	v.Policy = r.Policy
	v.Risk = r.Risk
	v.Scores = r.Scores
	v.Signals = r.Signals
	v.Device = r.Device
}

// Key is the Kafka key of v's record: the user id, else the anonymous id
// (nil when it has neither).
func (v *Verdict) Key() []byte {
	switch {
	case v.UserID != "":
		return []byte(v.UserID)
	case v.AnonymousID != "":
		return []byte(v.AnonymousID)
	}
	return nil
}

// MarshalJSON is AppendJSON for encoding/json.
func (v Verdict) MarshalJSON() ([]byte, error) { return v.AppendJSON(nil), nil }

// knownScores are the score kinds Castle documents, in the order records
// list them; other kinds follow, sorted.
var knownScores = [...]string{"account_takeover", "account_abuse", "bot"}

// AppendJSON appends v's record value, one JSON object, to dst. A risk or
// score that is not a finite number is left out.
func (v *Verdict) AppendJSON(dst []byte) []byte {
	w := writer{b: append(dst, '{'), first: true}
	w.str("message_id", v.MessageID)
	w.str("user_id", v.UserID)
	w.str("anonymous_id", v.AnonymousID)
	if v.Event != (Event{}) {
		w.key("event")
		e := writer{b: append(w.b, '{'), first: true}
		e.str("type", v.Event.Type)
		e.str("status", v.Event.Status)
		e.str("name", v.Event.Name)
		w.b = append(e.b, '}')
	}
	w.time("created_at", v.CreatedAt)
	w.time("scored_at", v.ScoredAt)
	w.str("endpoint", v.Endpoint)
	w.str("castle_event_id", v.CastleEventID)
	if p := v.Policy; p != nil && *p != (Policy{}) {
		w.key("policy")
		e := writer{b: append(w.b, '{'), first: true}
		e.str("action", p.Action)
		e.str("name", p.Name)
		e.str("id", p.ID)
		e.str("revision_id", p.RevisionID)
		w.b = append(e.b, '}')
	}
	if v.Risk != nil && finite(*v.Risk) {
		w.key("risk")
		w.b = appendFloat(w.b, *v.Risk)
	}
	if kinds := scoreKinds(v.Scores); len(kinds) > 0 {
		w.key("scores")
		e := writer{b: append(w.b, '{'), first: true}
		for _, k := range kinds {
			e.key(k)
			e.b = appendFloat(e.b, v.Scores[k])
		}
		w.b = append(e.b, '}')
	}
	if len(v.Signals) > 0 {
		w.key("signals")
		w.b = append(w.b, '[')
		for i, s := range v.Signals {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = jsonw.AppendString(w.b, s)
		}
		w.b = append(w.b, ']')
	}
	if v.Device != (Device{}) {
		w.key("device")
		e := writer{b: append(w.b, '{'), first: true}
		e.str("fingerprint", v.Device.Fingerprint)
		w.b = append(e.b, '}')
	}
	if s := v.Source; s != nil {
		w.key("source")
		w.b = append(w.b, `{"topic":`...)
		w.b = jsonw.AppendString(w.b, s.Topic)
		w.b = append(w.b, `,"partition":`...)
		w.b = strconv.AppendInt(w.b, int64(s.Partition), 10)
		w.b = append(w.b, `,"offset":`...)
		w.b = strconv.AppendInt(w.b, s.Offset, 10)
		w.b = append(w.b, '}')
	}
	return append(w.b, '}')
}

// scoreKinds lists the finite scores of m in record order.
func scoreKinds(m map[string]float64) []string {
	var known, other []string
	for _, k := range knownScores {
		if f, ok := m[k]; ok && finite(f) {
			known = append(known, k)
		}
	}
	for k, f := range m {
		if !slices.Contains(knownScores[:], k) && finite(f) {
			other = append(other, k)
		}
	}
	slices.Sort(other)
	return append(known, other...)
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// writer appends the members of one JSON object.
type writer struct {
	b     []byte
	first bool
}

func (w *writer) key(k string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = jsonw.AppendString(w.b, k)
	w.b = append(w.b, ':')
}

// str writes a string member, unless s is empty.
func (w *writer) str(k, s string) {
	if s == "" {
		return
	}
	w.key(k)
	w.b = jsonw.AppendString(w.b, s)
}

// time writes a time member in RFC 3339 (UTC, with as many fractional
// digits as it has), unless t is zero.
func (w *writer) time(k string, t time.Time) {
	if t.IsZero() {
		return
	}
	w.key(k)
	w.b = append(w.b, '"')
	w.b = t.UTC().AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
}

// appendFloat writes f as encoding/json does.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
