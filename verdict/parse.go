package verdict

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
)

// The errors of Parse, for errors.Is. ErrorKind names them for metrics.
var (
	// ErrNotJSON: the body is not a JSON object. Nothing was read.
	ErrNotJSON = errors.New("verdict: Castle's response is not a JSON object")
	// ErrNoPolicy: the body has no policy, or its action is not one of
	// allow, challenge, deny. The rest of the body was read; the event
	// itself was delivered.
	ErrNoPolicy = errors.New("verdict: Castle's response has no policy action")
)

// The policy actions Castle documents.
const (
	ActionAllow     = "allow"
	ActionChallenge = "challenge"
	ActionDeny      = "deny"
)

// ErrorKind is the bounded name of a Parse error: "not_json",
// "no_policy", or "" for any other error (and nil).
func ErrorKind(err error) string {
	switch {
	case errors.Is(err, ErrNotJSON):
		return "not_json"
	case errors.Is(err, ErrNoPolicy):
		return "no_policy"
	}
	return ""
}

// Response is what a verdict takes from Castle's 201 answer to /v1/risk or
// /v1/filter.
type Response struct {
	// ID is Castle's event id ("id").
	ID string
	// Policy is "policy"; nil when the body has none.
	Policy *Policy
	// Risk is "risk" (Castle's deprecated overall score); nil when absent.
	Risk *float64
	// Scores are "scores" flattened: {"bot":{"score":0.3}} is bot: 0.3.
	Scores map[string]float64
	// Signals are the names of "signals", sorted.
	Signals []string
	// Device is "device.fingerprint".
	Device Device
}

// Parse reads Castle's 201 body. It is tolerant: a field of an unexpected
// shape (a risk that is a string, a score that is not a finite number, a
// signal list of the wrong type, a policy id that is not a string) is left
// out, not an error. "scores" may
// map a kind to {"score": n} (Castle's form) or to n; "signals" may be an
// object of names (Castle's form) or an array of names (the form of some
// of Castle's changelog examples).
//
// Errors: ErrNotJSON when body is not a JSON object (the Response is
// empty), ErrNoPolicy when it has no usable policy action (the Response
// holds everything else, and the policy as given if there was one).
func Parse(body []byte) (Response, error) {
	var r Response
	var top map[string]json.RawMessage
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(body, &top) != nil {
		return Response{}, ErrNotJSON
	}
	_ = json.Unmarshal(top["id"], &r.ID)
	if risk, ok := number(top["risk"]); ok {
		r.Risk = &risk
	}
	var scores map[string]json.RawMessage
	_ = json.Unmarshal(top["scores"], &scores)
	for kind, v := range scores {
		var s struct {
			Score json.RawMessage `json:"score"`
		}
		n, ok := number(v)
		if !ok && json.Unmarshal(v, &s) == nil {
			n, ok = number(s.Score)
		}
		if !ok {
			continue
		}
		if r.Scores == nil {
			r.Scores = make(map[string]float64, len(scores))
		}
		r.Scores[kind] = n
	}
	r.Signals = signalNames(top["signals"])
	var dev struct {
		Fingerprint string `json:"fingerprint"`
	}
	if json.Unmarshal(top["device"], &dev) == nil {
		r.Device.Fingerprint = dev.Fingerprint
	}
	// Each member of the policy is read on its own: one of an unexpected
	// shape (a numeric id) must not take the action with it.
	var pol map[string]json.RawMessage
	if p := top["policy"]; len(p) > 0 && p[0] == '{' && json.Unmarshal(p, &pol) == nil {
		r.Policy = &Policy{Action: str(pol["action"]), Name: str(pol["name"]), ID: str(pol["id"]), RevisionID: str(pol["revision_id"])}
	}
	if r.Policy == nil || ActionLabel(r.Policy.Action) == actionNone {
		return r, ErrNoPolicy
	}
	return r, nil
}

// str reads a JSON string; anything else is "".
func str(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// number reads a JSON number that is a finite float64.
func number(raw json.RawMessage) (float64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || !finite(f) {
		return 0, false
	}
	return f, true
}

// signalNames reads "signals": an object whose keys are the names, or an
// array of name strings. Names come back sorted, without duplicates or
// empty names.
func signalNames(raw json.RawMessage) []string {
	var names []string
	var obj map[string]json.RawMessage
	var arr []json.RawMessage
	switch {
	case json.Unmarshal(raw, &obj) == nil && obj != nil:
		for k := range obj {
			names = append(names, k)
		}
	case json.Unmarshal(raw, &arr) == nil:
		for _, e := range arr {
			var s string
			if json.Unmarshal(e, &s) == nil {
				names = append(names, s)
			}
		}
	}
	names = slices.DeleteFunc(names, func(s string) bool { return s == "" })
	slices.Sort(names)
	return slices.Compact(names)
}
