package mapping

import (
	"time"
	"unicode/utf8"
)

// Event is one Castle POST /v1/log body.
type Event struct {
	Type         string // "$page" or "$custom"
	Name         string // $custom: the event name (at most MaxNameLength characters)
	CreatedAt    time.Time
	RequestToken string
	User         User
	// IP is the public client IP; when empty, no context is sent (Castle
	// requires a valid public IP whenever context is present).
	IP        string
	UserAgent string
	Locale    string
	Referer   string
	Library   string // castle-destination version
	// props holds the flattened properties as encoded JSON members
	// ("k":v,"k2":v2), ready to be written.
	props  []byte
	nprops int
}

// User is the Castle user object.
type User struct {
	ID, Email, Phone, Name, RegisteredAt string
	Address                              Address
	// traits holds the flattened custom traits as encoded JSON members.
	traits  []byte
	ntraits int
}

// Address is Castle's user.address.
type Address struct {
	Line1, Line2, City, CountryCode, RegionCode, PostalCode string
}

func (a Address) empty() bool { return a == Address{} }

func (u *User) empty() bool {
	return u.ID == "" && u.Email == "" && u.Phone == "" && u.Name == "" && u.RegisteredAt == "" &&
		u.Address.empty() && u.ntraits == 0
}

// UserID is Castle's user.id after Secure Mode ("" when none): the per-user
// pacing and ordering key.
func (e *Event) UserID() string { return e.User.ID }

// Time is the event time sent as created_at (zero when unknown).
func (e *Event) Time() time.Time { return e.CreatedAt }

// Properties returns the number of flattened properties.
func (e *Event) Properties() int { return e.nprops }

// AppendJSON appends the exact request body: valid JSON with a fixed key
// order, so output is deterministic.
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, e.Type)
	if e.Name != "" {
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, e.Name)
	}
	if !e.CreatedAt.IsZero() {
		dst = append(dst, `,"created_at":"`...)
		dst = e.CreatedAt.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
		dst = append(dst, '"')
	}
	if e.RequestToken != "" {
		dst = append(dst, `,"request_token":`...)
		dst = appendString(dst, e.RequestToken)
	}
	if !e.User.empty() {
		dst = append(dst, `,"user":{`...)
		first := true
		for _, f := range [...]struct{ k, v string }{
			{"id", e.User.ID}, {"email", e.User.Email}, {"phone", e.User.Phone},
			{"name", e.User.Name}, {"registered_at", e.User.RegisteredAt},
		} {
			if f.v != "" {
				dst = member(dst, &first, f.k)
				dst = appendString(dst, f.v)
			}
		}
		if a := e.User.Address; !a.empty() {
			dst = member(dst, &first, "address")
			dst = append(dst, '{')
			af := true
			for _, f := range [...]struct{ k, v string }{
				{"line1", a.Line1}, {"line2", a.Line2}, {"city", a.City},
				{"country_code", a.CountryCode}, {"region_code", a.RegionCode}, {"postal_code", a.PostalCode},
			} {
				if f.v != "" {
					dst = member(dst, &af, f.k)
					dst = appendString(dst, f.v)
				}
			}
			dst = append(dst, '}')
		}
		if e.User.ntraits > 0 {
			dst = member(dst, &first, "traits")
			dst = append(dst, '{')
			dst = append(dst, e.User.traits...)
			dst = append(dst, '}')
		}
		dst = append(dst, '}')
	}
	if e.IP != "" {
		dst = append(dst, `,"context":{"ip":`...)
		dst = appendString(dst, e.IP)
		// Castle requires headers whenever context is sent: {} when none
		// is known.
		dst = append(dst, `,"headers":{`...)
		first := true
		for _, h := range [...]struct{ k, v string }{
			{"User-Agent", e.UserAgent}, {"Accept-Language", e.Locale}, {"Referer", e.Referer},
		} {
			if h.v != "" {
				dst = member(dst, &first, h.k)
				dst = appendString(dst, h.v)
			}
		}
		dst = append(dst, '}')
		dst = append(dst, `,"library":{"name":"castle-destination","version":`...)
		dst = appendString(dst, e.Library)
		dst = append(dst, `}}`...)
	}
	dst = append(dst, `,"properties":{`...)
	dst = append(dst, e.props...)
	dst = append(dst, `}}`...)
	return dst
}

func member(dst []byte, first *bool, key string) []byte {
	if !*first {
		dst = append(dst, ',')
	}
	*first = false
	dst = appendString(dst, key)
	return append(dst, ':')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. s must be valid UTF-8 (invalid
// bytes are written as U+FFFD).
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				i++
				start = i
				continue
			}
			if r == '\u2028' || r == '\u2029' {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\u202`...)
				dst = append(dst, hexDigits[r&0xF])
				i += n
				start = i
				continue
			}
			i += n
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
