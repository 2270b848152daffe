package mapping

// Endpoint is the Castle API endpoint an event is sent to.
type Endpoint uint8

// The endpoints.
const (
	// Log is POST /v1/log: the event is recorded on the user's timeline,
	// not scored. Every event can go there.
	Log Endpoint = iota
	// Risk is POST /v1/risk: a security event of a known user is scored.
	Risk
	// Filter is POST /v1/filter: a security event before (or without) a
	// known user is scored.
	Filter
)

// String is "log", "risk" or "filter" (a metric label value).
func (ep Endpoint) String() string {
	switch ep {
	case Risk:
		return "risk"
	case Filter:
		return "filter"
	}
	return "log"
}

// Path is the endpoint's URL path, "/v1/log", "/v1/risk" or "/v1/filter".
func (ep Endpoint) Path() string { return "/v1/" + ep.String() }

// SecurityEvent is a Castle event type and status, such as $login
// $succeeded.
type SecurityEvent struct {
	Type, Status string
}

// endpoints is a set of endpoints, one bit per Endpoint.
type endpoints uint8

const (
	onLog endpoints = 1 << iota
	onRisk
	onFilter
)

// eventTypes: the security event types, with the endpoints that accept
// each; eventStatuses: the statuses, likewise. Castle's API description
// (its OpenAPI document, as generated into castle-java, 2025) lists them
// per endpoint; docs.castle.io "Events" adds that $requested is a status
// of $challenge only, and that $custom takes no status ($custom and $page
// are not security events here). docs/mapping.md has the table and its
// sources.
var (
	eventTypes = map[string]endpoints{
		"$login":                  onLog | onRisk | onFilter,
		"$registration":           onLog | onRisk | onFilter,
		"$logout":                 onLog | onRisk,
		"$profile_update":         onLog | onRisk,
		"$profile_reset":          onLog | onRisk,
		"$password_reset_request": onLog | onFilter,
		"$transaction":            onLog | onRisk | onFilter,
		"$challenge":              onLog | onRisk | onFilter,
	}
	eventStatuses = map[string]endpoints{
		"$attempted": onLog | onRisk | onFilter,
		"$succeeded": onLog | onRisk | onFilter,
		"$failed":    onLog | onRisk | onFilter,
		"$requested": onRisk,
	}
)

// accepts reports whether ep takes the type and status. $requested is a
// status of $challenge only, on /v1/risk; /v1/log takes it as $attempted
// (it records every event), /v1/filter does not score it.
func accepts(ep Endpoint, typ, status string) bool {
	if status == "$requested" {
		if typ != "$challenge" {
			return false
		}
		if ep == Log {
			status = "$attempted"
		}
	}
	return eventTypes[typ]&eventStatuses[status]&(1<<ep) != 0
}

// statusOn is the status as sent to ep: $requested exists on /v1/risk
// only, and elsewhere the nearest status is $attempted.
func statusOn(ep Endpoint, status string) string {
	if status == "$requested" && ep != Risk {
		return "$attempted"
	}
	return status
}

// legacyEvents are Castle's documented event names of its legacy track
// API ("$login.succeeded"), which a track event may still use, with the
// current type and status each stands for. A completed password reset is
// $profile_reset: Castle's type for "a user resetting their email, phone,
// name, or password" (the legacy name's meaning), not $password_reset_
// request (the start of the flow). An EVENT_MAP entry can map the name to
// $profile_update instead, which Castle's events page also suggests.
var legacyEvents = map[string]SecurityEvent{
	"$login.succeeded":                  {"$login", "$succeeded"},
	"$login.failed":                     {"$login", "$failed"},
	"$registration.succeeded":           {"$registration", "$succeeded"},
	"$registration.failed":              {"$registration", "$failed"},
	"$logout.succeeded":                 {"$logout", "$succeeded"},
	"$profile_update.succeeded":         {"$profile_update", "$succeeded"},
	"$profile_update.failed":            {"$profile_update", "$failed"},
	"$password_reset_request.succeeded": {"$password_reset_request", "$succeeded"},
	"$password_reset_request.failed":    {"$password_reset_request", "$failed"},
	"$password_reset.succeeded":         {"$profile_reset", "$succeeded"},
	"$password_reset.failed":            {"$profile_reset", "$failed"},
	"$challenge.requested":              {"$challenge", "$requested"},
	"$challenge.succeeded":              {"$challenge", "$succeeded"},
	"$challenge.failed":                 {"$challenge", "$failed"},
	"$transaction.attempted":            {"$transaction", "$attempted"},
	"$transaction.succeeded":            {"$transaction", "$succeeded"},
	"$transaction.failed":               {"$transaction", "$failed"},
}

// securityEvent is what a track event's name maps to: the EVENT_MAP entry
// of that exact name first, else Castle's legacy name; ok is false for any
// other name (a $custom event).
func (m *Mapper) securityEvent(name string) (SecurityEvent, bool) {
	if se, ok := m.cfg.Events.m[name]; ok {
		return se.SecurityEvent, true
	}
	if len(name) > 0 && name[0] == '$' {
		se, ok := legacyEvents[name]
		return se, ok
	}
	return SecurityEvent{}, false
}
