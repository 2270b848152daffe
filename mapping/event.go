package mapping

import (
	"time"

	"github.com/castle-destination/castle-destination/internal/jsonw"
)

// Event is one Castle event, ready to be encoded for any endpoint.
type Event struct {
	// Type is "$page", "$custom", or a security event type ("$login", ...).
	Type string
	// Status is a security event's status ("$succeeded", "$failed",
	// "$attempted", "$requested"); "" for $page and $custom. $requested
	// exists on /v1/risk only: AppendBody sends it elsewhere as
	// $attempted.
	Status string
	// Name is the Segment event name of a track (at most MaxNameLength
	// characters), or a custom page's name.
	Name         string
	CreatedAt    time.Time
	RequestToken string // a fresh Castle request token, or ""
	User         User
	// IP is the public client IP; when empty, no context is sent (Castle
	// requires a valid public IP whenever context is present).
	IP        string
	UserAgent string
	Locale    string
	Referer   string
	Library   string // castle-destination version
	// props holds the flattened properties as encoded JSON members
	// ("k":v,"k2":v2), ready to be written. A security event's changeset
	// object, flattened, is props[split:]: sent as properties where the
	// endpoint has no changeset field. nprops counts them all.
	props  []byte
	split  int
	nprops int
	// A security event's submitted identifier (string properties email,
	// username, phone): /v1/filter's params, properties elsewhere.
	params [3]string
	// A security event's changeset (/v1/risk only) and transaction (every
	// endpoint) objects, as clean encoded JSON.
	changeset, transaction []byte
}

// paramKeys name Event.params and the properties they come from.
var paramKeys = [3]string{"email", "username", "phone"}

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

// valid reports whether Castle takes a: it requires country_code, an ISO
// 3166 code. Segment's own Castle integration sends an address only when
// its country is so short; a country's name ("United States") is not one.
func (a Address) valid() bool { return countryCode(a.CountryCode) }

// countryCode reports whether c has the form of the ISO 3166-1 alpha-2
// code Castle's Address requires: two capital letters. (Wherever the
// mapping sends an address, upperASCII has capitalised it first.)
func countryCode(c string) bool {
	return len(c) == 2 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z'
}

// UserID is Castle's user.id after Secure Mode ("" when none): the per-user
// pacing and ordering key.
func (e *Event) UserID() string { return e.User.ID }

// Time is the event time sent as created_at (zero when unknown).
func (e *Event) Time() time.Time { return e.CreatedAt }

// Properties returns the number of flattened properties sent to /v1/log.
func (e *Event) Properties() int {
	n := e.nprops
	for _, p := range e.params {
		if p != "" {
			n++
		}
	}
	return n
}

// Security reports whether the event is a Castle security event (a type
// with a status), not $page or $custom.
func (e *Event) Security() bool { return e.Status != "" }

// Scoring is where a scoring worker sends the event: Risk or Filter when
// it can be scored, else Log. It can be scored when it is a security event
// with a request token (fresh when mapped) and a public IP, so that a
// context with ip and headers is sent. Risk when it names a user and Risk
// accepts its type and status; else Filter when Filter accepts them (no
// user, or a type only Filter takes: $password_reset_request); else Log.
// How old the event may be when it is sent is the sender's rule.
func (e *Event) Scoring() Endpoint {
	if e.RequestToken == "" {
		return Log
	}
	return e.ScoringWithToken()
}

// ScoringWithToken is Scoring as if the event carried a request token:
// where an event whose token the mapping left out as stale
// (AdjustTokenStale) would have been scored, had it been read in time.
func (e *Event) ScoringWithToken() Endpoint {
	if !e.Security() || e.IP == "" {
		return Log
	}
	if e.User.ID != "" && accepts(Risk, e.Type, e.Status) {
		return Risk
	}
	if accepts(Filter, e.Type, e.Status) {
		return Filter
	}
	return Log
}

// AppendJSON appends the /v1/log body: AppendBody(dst, Log, true).
func (e *Event) AppendJSON(dst []byte) []byte { return e.AppendBody(dst, Log, true) }

// AppendBody appends the exact request body for endpoint ep: valid JSON
// with a fixed key order, so output is deterministic. withToken false
// leaves the request token out: a /v1/log fallback for a token Castle
// refused, or one that aged while waiting, must not carry it again. ep
// should be Log or what Scoring returned.
//
// Per endpoint: /v1/log and /v1/risk carry user and the submitted
// identifier (email, username, phone) in properties; /v1/filter carries no
// user but matching_user_id (the user id, when known) and the identifier
// as params. A changeset object is changeset on /v1/risk and flattened
// properties elsewhere; a transaction object is transaction everywhere.
func (e *Event) AppendBody(dst []byte, ep Endpoint, withToken bool) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendString(dst, e.Type)
	if e.Status != "" {
		dst = append(dst, `,"status":`...)
		dst = appendString(dst, statusOn(ep, e.Status))
	}
	if e.Name != "" {
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, e.Name)
	}
	if !e.CreatedAt.IsZero() {
		dst = append(dst, `,"created_at":"`...)
		dst = jsonw.AppendStamp(dst, e.CreatedAt)
		dst = append(dst, '"')
	}
	if withToken && e.RequestToken != "" {
		dst = append(dst, `,"request_token":`...)
		dst = appendString(dst, e.RequestToken)
	}
	if ep == Filter {
		if e.User.ID != "" {
			dst = append(dst, `,"matching_user_id":`...)
			dst = appendString(dst, e.User.ID)
		}
		if e.params != [3]string{} {
			dst = append(dst, `,"params":{`...)
			dst = e.appendParams(dst, false)
			dst = append(dst, '}')
		}
	} else if e.User.ID != "" {
		// Castle's user requires an id (castle-java's generated User):
		// an anonymous event's traits are not sent, as in Segment's own
		// Castle integration, rather than have Castle refuse the event.
		dst = e.User.appendJSON(append(dst, `,"user":`...))
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
	props := e.props
	if ep == Risk && e.changeset != nil {
		props = props[:e.split]
	}
	dst = append(dst, props...)
	if ep != Filter {
		dst = e.appendParams(dst, len(props) > 0)
	}
	dst = append(dst, '}')
	if ep == Risk && e.changeset != nil {
		dst = append(dst, `,"changeset":`...)
		dst = append(dst, e.changeset...)
	}
	if e.transaction != nil {
		dst = append(dst, `,"transaction":`...)
		dst = append(dst, e.transaction...)
	}
	return append(dst, '}')
}

// appendParams appends the submitted identifier as JSON members, after a
// comma when more is true.
func (e *Event) appendParams(dst []byte, more bool) []byte {
	first := !more
	for i, v := range e.params {
		if v != "" {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendString(dst, paramKeys[i])
			dst = append(dst, ':')
			dst = appendString(dst, v)
		}
	}
	return dst
}

// appendJSON appends the user object.
func (u *User) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	first := true
	for _, f := range [...]struct{ k, v string }{
		{"id", u.ID}, {"email", u.Email}, {"phone", u.Phone},
		{"name", u.Name}, {"registered_at", u.RegisteredAt},
	} {
		if f.v != "" {
			dst = member(dst, &first, f.k)
			dst = appendString(dst, f.v)
		}
	}
	if a := u.Address; !a.empty() {
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
	if u.ntraits > 0 {
		dst = member(dst, &first, "traits")
		dst = append(dst, '{')
		dst = append(dst, u.traits...)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func member(dst []byte, first *bool, key string) []byte {
	if !*first {
		dst = append(dst, ',')
	}
	*first = false
	dst = appendString(dst, key)
	return append(dst, ':')
}

// appendString appends s as a JSON string (jsonw.AppendString).
func appendString(dst []byte, s string) []byte { return jsonw.AppendString(dst, s) }
