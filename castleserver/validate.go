package castleserver

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// validationError is a rejected body: status, Castle error type, message.
type validationError struct {
	status  int
	typ     string
	message string
}

// invalid builds Castle's 422: "One or more parameters are invalid: ..."
// naming the JSON pointer, as in castle-node PR #127.
func invalid(format string, args ...any) *validationError {
	return &validationError{
		status:  http.StatusUnprocessableEntity,
		typ:     "invalid_parameters",
		message: "One or more parameters are invalid: \n" + fmt.Sprintf(format, args...),
	}
}

var errNotObject = &validationError{http.StatusBadRequest, "bad_request", "The request body must be a JSON object"}

// parsed is what the server reads out of a valid body.
type parsed struct {
	typ, name, userID string
	createdAt         time.Time
}

// validate checks body against what Castle documents for /v1/log. Fields
// it does not know (sent_at, timestamp, product, session, transaction, ...)
// are accepted as they are.
func (s *Server) validate(body []byte) (parsed, *validationError) {
	var out parsed
	d, err := parseJSON(body)
	if err != nil {
		return out, errNotObject
	}
	defer d.free()
	const root = 0
	if d.kind(root) != jObject {
		return out, errNotObject
	}

	t := d.get(root, "type")
	if t < 0 {
		return out, invalid("root is missing required properties: type")
	}
	if d.kind(t) != jString {
		return out, notOfType("/type", "string")
	}
	out.typ = d.text(t)
	if _, ok := s.types[out.typ]; !ok {
		return out, invalid("property '/type' is not one of: %s", strings.Join(s.cfg.Types, ", "))
	}
	if n := d.get(root, "name"); n >= 0 {
		if d.kind(n) != jString {
			return out, notOfType("/name", "string")
		}
		if d.runes(n) > s.cfg.MaxNameLength {
			return out, invalid("property '/name' is longer than %d characters", s.cfg.MaxNameLength)
		}
		out.name = d.text(n)
	}
	if out.typ == "$custom" && out.name == "" {
		return out, invalid("root is missing required properties: name (required when type is $custom)")
	}
	if st := d.get(root, "status"); st >= 0 {
		if d.kind(st) != jString {
			return out, notOfType("/status", "string")
		}
		if !slices.Contains(statuses, d.text(st)) {
			return out, invalid("property '/status' is not one of: %s", strings.Join(statuses, ", "))
		}
	}
	if tok := d.get(root, "request_token"); tok >= 0 && d.kind(tok) != jString {
		return out, notOfType("/request_token", "string")
	}
	if ca := d.get(root, "created_at"); ca >= 0 {
		if d.kind(ca) != jString {
			return out, notOfType("/created_at", "string")
		}
		ts, err := time.Parse(time.RFC3339Nano, d.text(ca))
		if err != nil {
			return out, invalid("property '/created_at' is not a valid date-time (RFC 3339)")
		}
		out.createdAt = ts
	}
	if err := s.flatObject(d, d.get(root, "properties"), "/properties"); err != nil {
		return out, err
	}
	if u := d.get(root, "user"); u >= 0 && d.kind(u) != jNull {
		id, err := s.validateUser(d, u)
		if err != nil {
			return out, err
		}
		out.userID = id
	}
	if c := d.get(root, "context"); c >= 0 && d.kind(c) != jNull {
		if err := validateContext(d, c); err != nil {
			return out, err
		}
	}
	return out, nil
}

func notOfType(ptr, want string) *validationError {
	return invalid("property '%s' is not of type: %s", ptr, want)
}

func (s *Server) validateUser(d *doc, u int32) (string, *validationError) {
	if d.kind(u) != jObject {
		return "", notOfType("/user", "object")
	}
	var id string
	if v := d.get(u, "id"); v >= 0 {
		if d.kind(v) != jString {
			return "", notOfType("/user/id", "string")
		}
		id = d.text(v)
	}
	for _, f := range []string{"email", "phone", "name", "registered_at"} {
		if v := d.get(u, f); v >= 0 && d.kind(v) != jString {
			return "", notOfType("/user/"+f, "string")
		}
	}
	if a := d.get(u, "address"); a >= 0 && d.kind(a) != jNull && d.kind(a) != jObject {
		return "", notOfType("/user/address", "object")
	}
	if err := s.flatObject(d, d.get(u, "traits"), "/user/traits"); err != nil {
		return "", err
	}
	return id, nil
}

// flatObject checks an optional (v < 0: absent) one-level object of string
// (bounded), number, boolean or null values. The first offending member,
// in document order, is named.
func (s *Server) flatObject(d *doc, v int32, ptr string) *validationError {
	if v < 0 || d.kind(v) == jNull {
		return nil
	}
	if d.kind(v) != jObject {
		return notOfType(ptr, "object")
	}
	for c := d.nodes[v].child; c >= 0; c = d.nodes[c].next {
		switch d.kind(c) {
		case jObject, jArray:
			return notOfType(ptr+"/"+escapePointer(d.key(c)), "string, number, boolean, null")
		case jString:
			if d.runes(c) > s.cfg.MaxStringLength {
				return invalid("property '%s/%s' is longer than %d characters", ptr, escapePointer(d.key(c)), s.cfg.MaxStringLength)
			}
		}
	}
	return nil
}

func validateContext(d *doc, c int32) *validationError {
	if d.kind(c) != jObject {
		return notOfType("/context", "object")
	}
	ip := d.get(c, "ip")
	if ip < 0 {
		return invalid("property '/context' is missing required properties: ip")
	}
	if d.kind(ip) != jString {
		return notOfType("/context/ip", "string")
	}
	if !publicIP(d.text(ip)) {
		return invalid("property '/context/ip' must be a valid, public IP")
	}
	if l := d.get(c, "library"); l >= 0 && d.kind(l) != jNull && d.kind(l) != jObject {
		return notOfType("/context/library", "object")
	}
	h := d.get(c, "headers")
	if h < 0 || d.kind(h) == jNull {
		return nil
	}
	switch d.kind(h) {
	case jObject:
		// What every Castle SDK sends: values are strings, or true for a
		// scrubbed header (Cookie, Authorization).
		for m := d.nodes[h].child; m >= 0; m = d.nodes[m].next {
			if d.kind(m) != jString && !d.isTrue(m) {
				return notOfType("/context/headers/"+escapePointer(d.key(m)), "string, true")
			}
		}
	case jArray:
		// The form of the OpenAPI example: [[name, value], ...].
		i := 0
		for p := d.nodes[h].child; p >= 0; p = d.nodes[p].next {
			first := d.nodes[p].child
			if d.kind(p) != jArray || d.children(p) != 2 || d.kind(first) != jString || d.kind(d.nodes[first].next) != jString {
				return invalid("property '/context/headers/%d' is not a [name, value] pair of strings", i)
			}
			i++
		}
	default:
		return notOfType("/context/headers", "object")
	}
	return nil
}

// publicIP: a valid IPv4 or IPv6 address that is global unicast and not
// private (RFC 1918, RFC 4193). Loopback, link-local, multicast and
// unspecified addresses are not global unicast. Documentation ranges
// (192.0.2.0/24, 2001:db8::/32, ...) are accepted, so examples work.
func publicIP(s string) bool {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return false
	}
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate()
}

// escapePointer escapes a key for a JSON pointer (RFC 6901).
func escapePointer(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
