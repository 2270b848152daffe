package castleserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
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

// parsed is what the server reads out of a valid body.
type parsed struct {
	typ, name, userID string
	createdAt         time.Time
}

// payload holds the fields checked; the rest (sent_at, timestamp,
// product, session, transaction, ...) is accepted as is.
type payload struct {
	Type         json.RawMessage `json:"type"`
	Name         json.RawMessage `json:"name"`
	Status       json.RawMessage `json:"status"`
	User         json.RawMessage `json:"user"`
	Properties   json.RawMessage `json:"properties"`
	Context      json.RawMessage `json:"context"`
	CreatedAt    json.RawMessage `json:"created_at"`
	RequestToken json.RawMessage `json:"request_token"`
}

type userPayload struct {
	ID           json.RawMessage `json:"id"`
	Email        json.RawMessage `json:"email"`
	Phone        json.RawMessage `json:"phone"`
	Name         json.RawMessage `json:"name"`
	RegisteredAt json.RawMessage `json:"registered_at"`
	Traits       json.RawMessage `json:"traits"`
	Address      json.RawMessage `json:"address"`
}

type contextPayload struct {
	IP      json.RawMessage `json:"ip"`
	Headers json.RawMessage `json:"headers"`
	Library json.RawMessage `json:"library"`
}

// validate checks body against what Castle documents for /v1/log.
func (s *Server) validate(body []byte) (parsed, *validationError) {
	var out parsed
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(body) {
		return out, &validationError{http.StatusBadRequest, "bad_request", "The request body must be a JSON object"}
	}
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		return out, &validationError{http.StatusBadRequest, "bad_request", "The request body must be a JSON object"}
	}

	if p.Type == nil {
		return out, invalid("root is missing required properties: type")
	}
	if !asString(p.Type, &out.typ) {
		return out, invalid("property '/type' is not of type: string")
	}
	if _, ok := s.types[out.typ]; !ok {
		return out, invalid("property '/type' is not one of: %s", strings.Join(s.cfg.Types, ", "))
	}
	if p.Name != nil {
		if !asString(p.Name, &out.name) {
			return out, invalid("property '/name' is not of type: string")
		}
		if utf8.RuneCountInString(out.name) > s.cfg.MaxNameLength {
			return out, invalid("property '/name' is longer than %d characters", s.cfg.MaxNameLength)
		}
	}
	if out.typ == "$custom" && out.name == "" {
		return out, invalid("root is missing required properties: name (required when type is $custom)")
	}
	if p.Status != nil {
		var st string
		if !asString(p.Status, &st) {
			return out, invalid("property '/status' is not of type: string")
		}
		if !slices.Contains(statuses, st) {
			return out, invalid("property '/status' is not one of: %s", strings.Join(statuses, ", "))
		}
	}
	if p.RequestToken != nil {
		var tok string
		if !asString(p.RequestToken, &tok) {
			return out, invalid("property '/request_token' is not of type: string")
		}
	}
	if p.CreatedAt != nil {
		var ts string
		if !asString(p.CreatedAt, &ts) {
			return out, invalid("property '/created_at' is not of type: string")
		}
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return out, invalid("property '/created_at' is not a valid date-time (RFC 3339)")
		}
		out.createdAt = t
	}
	if err := s.flatObject(p.Properties, "/properties"); err != nil {
		return out, err
	}
	if p.User != nil && !isNull(p.User) {
		id, err := s.validateUser(p.User)
		if err != nil {
			return out, err
		}
		out.userID = id
	}
	if p.Context != nil && !isNull(p.Context) {
		if err := validateContext(p.Context); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (s *Server) validateUser(raw json.RawMessage) (string, *validationError) {
	if !isObject(raw) {
		return "", invalid("property '/user' is not of type: object")
	}
	var u userPayload
	_ = json.Unmarshal(raw, &u) // raw is a valid object
	var id string
	if u.ID != nil && !asString(u.ID, &id) {
		return "", invalid("property '/user/id' is not of type: string")
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"email", u.Email}, {"phone", u.Phone}, {"name", u.Name}, {"registered_at", u.RegisteredAt}} {
		var v string
		if f.raw != nil && !asString(f.raw, &v) {
			return "", invalid("property '/user/%s' is not of type: string", f.name)
		}
	}
	if u.Address != nil && !isNull(u.Address) && !isObject(u.Address) {
		return "", invalid("property '/user/address' is not of type: object")
	}
	if err := s.flatObject(u.Traits, "/user/traits"); err != nil {
		return "", err
	}
	return id, nil
}

// flatObject checks an optional one-level object of string (bounded),
// number, boolean or null values.
func (s *Server) flatObject(raw json.RawMessage, ptr string) *validationError {
	if raw == nil || isNull(raw) {
		return nil
	}
	if !isObject(raw) {
		return invalid("property '%s' is not of type: object", ptr)
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(raw, &m) // raw is a valid object
	// Check in key order, so that the error named is deterministic.
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := bytes.TrimLeft(m[k], " \t\r\n")
		switch v[0] {
		case '{', '[':
			return invalid("property '%s/%s' is not of type: string, number, boolean, null", ptr, escapePointer(k))
		case '"':
			var str string
			_ = json.Unmarshal(v, &str)
			if utf8.RuneCountInString(str) > s.cfg.MaxStringLength {
				return invalid("property '%s/%s' is longer than %d characters", ptr, escapePointer(k), s.cfg.MaxStringLength)
			}
		}
	}
	return nil
}

func validateContext(raw json.RawMessage) *validationError {
	if !isObject(raw) {
		return invalid("property '/context' is not of type: object")
	}
	var c contextPayload
	_ = json.Unmarshal(raw, &c)
	if c.IP == nil {
		return invalid("property '/context' is missing required properties: ip")
	}
	var ip string
	if !asString(c.IP, &ip) {
		return invalid("property '/context/ip' is not of type: string")
	}
	if !publicIP(ip) {
		return invalid("property '/context/ip' must be a valid, public IP")
	}
	if c.Library != nil && !isNull(c.Library) && !isObject(c.Library) {
		return invalid("property '/context/library' is not of type: object")
	}
	if c.Headers == nil || isNull(c.Headers) {
		return nil
	}
	h := bytes.TrimLeft(c.Headers, " \t\r\n")
	switch h[0] {
	case '{':
		// What every Castle SDK sends: values are strings, or true for a
		// scrubbed header (Cookie, Authorization).
		var m map[string]json.RawMessage
		_ = json.Unmarshal(h, &m)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v := bytes.TrimSpace(m[k])
			var str string
			if !asString(v, &str) && !bytes.Equal(v, []byte("true")) {
				return invalid("property '/context/headers/%s' is not of type: string, true", escapePointer(k))
			}
		}
	case '[':
		// The form of the OpenAPI example: [[name, value], ...].
		var pairs [][]json.RawMessage
		if json.Unmarshal(h, &pairs) != nil {
			return invalid("property '/context/headers' is not an array of [name, value] pairs")
		}
		for i, p := range pairs {
			var a, b string
			if len(p) != 2 || !asString(p[0], &a) || !asString(p[1], &b) {
				return invalid("property '/context/headers/%d' is not a [name, value] pair of strings", i)
			}
		}
	default:
		return invalid("property '/context/headers' is not of type: object")
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

func asString(raw json.RawMessage, out *string) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return false
	}
	return json.Unmarshal(raw, out) == nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{'
}

// escapePointer escapes a key for a JSON pointer (RFC 6901).
func escapePointer(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
