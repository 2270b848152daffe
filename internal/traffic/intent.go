package traffic

import (
	analytics "github.com/segmentio/analytics-go/v3"
)

// flag is the state of one integrations key.
type flag int8

const (
	unset  flag = iota
	off         // false
	on          // true
	object      // an options object (Segment: any non-boolean enables)
)

// integ is what a message's integrations object is meant to say about
// Castle. Keys are the exact spellings written on the wire.
type integ struct {
	castle    flag
	castleKey string // "Castle" unless set otherwise
	all       flag
	allKey    string // "All" unless set otherwise
	mixpanel  flag   // another destination, irrelevant to Castle
	jwt       string // userJwt inside the Castle options object
	reqToken  string // requestToken inside the Castle options object
}

// enabled is the integrations rule on the intent (docs/mapping.md,
// "Filtering, in order", rule 4): Castle false disables; Castle true or an
// object enables; otherwise All false disables.
func (i integ) enabled() bool {
	switch i.castle {
	case off:
		return false
	case on, object:
		return true
	}
	return i.all != off
}

// merged is the effective integrations of an envelope item: per key, the
// item's value wins over the batch's. The generator never combines spellings
// whose values could disagree (see envelope.go), so one logical key per
// spelling is enough.
func merged(batch, item integ) integ {
	out := batch
	if item.castle != unset {
		out.castle, out.castleKey, out.jwt, out.reqToken = item.castle, item.castleKey, item.jwt, item.reqToken
	}
	if item.all != unset {
		out.all, out.allKey = item.all, item.allKey
	}
	if item.mixpanel != unset {
		out.mixpanel = item.mixpanel
	}
	return out
}

// wire returns the integrations object to write, or nil for none.
func (i integ) wire() analytics.Integrations {
	if i.castle == unset && i.all == unset && i.mixpanel == unset {
		return nil
	}
	m := make(analytics.Integrations, 3)
	switch i.castle {
	case off, on:
		m[keyOr(i.castleKey, "Castle")] = i.castle == on
	case object:
		opts := map[string]any{}
		if i.jwt != "" {
			opts["userJwt"] = i.jwt
		}
		if i.reqToken != "" {
			opts["requestToken"] = i.reqToken
		}
		m[keyOr(i.castleKey, "Castle")] = opts
	}
	if i.all != unset {
		m[keyOr(i.allKey, "All")] = i.all == on
	}
	if i.mixpanel != unset {
		m["Mixpanel"] = i.mixpanel == on
	}
	return m
}

func keyOr(k, def string) string {
	if k == "" {
		return def
	}
	return k
}

// serverLibraries are the libraries whose messages are server-side when
// they carry no channel (docs/mapping.md, "Filtering, in order", rule 3),
// by context.library.name.
var serverLibraries = map[string]bool{
	"analytics-node": true, "analytics-go": true, "analytics-python": true, "analytics-ruby": true,
	"analytics-java": true, "analytics-php": true, "analytics-dotnet": true,
}

// intent is what the generator meant one well-formed message to be, after
// any envelope merge.
type intent struct {
	typ       string
	messageID string
	userID    string // the message's userId
	channel   string // "" when absent
	library   string // effective context.library.name, "" when absent
	integ     integ  // effective integrations
	jwt       jwtKind
	claimID   string // the id claim of a valid token
	event     string // track event name
	// sec is set for a security event: what Castle gets instead of $custom.
	sec *secIntent
}

// secIntent is what a security event is meant to become at Castle.
type secIntent struct {
	typ, status string // Castle type and status
	scoring     string // ScoringRisk or ScoringFilter
}

// expect applies the filtering rules, in order, then the mapping rules
// (docs/mapping.md) to the intent.
func (in intent) expect() Expect {
	e := Expect{MessageID: in.messageID, Type: in.typ}
	drop := func(o Outcome, reason string) Expect {
		e.Outcome, e.Reason = o, reason
		return e
	}
	switch in.typ {
	case "page", "track", "identify":
	default:
		return drop(Drop, ReasonUnsupportedType)
	}
	switch {
	case in.channel == "server", in.channel == "" && serverLibraries[in.library]:
		return drop(Drop, ReasonServerSide)
	case in.channel == "mobile":
		return drop(Drop, ReasonMobile)
	}
	if !in.integ.enabled() {
		return drop(Drop, ReasonIntegrationDisabled)
	}
	if in.jwt.invalid() {
		return drop(DeadLetter, ReasonUserJWTInvalid)
	}
	if in.typ == "identify" {
		e.Outcome = Identified
		return e
	}
	e.Outcome = Forward
	e.TraceID = in.messageID
	e.UserID = in.userID
	if in.jwt == jwtValid {
		e.UserID = in.claimID
	}
	switch {
	case in.typ == "page":
		e.CastleType = "$page"
	case in.sec != nil:
		e.CastleType, e.CastleStatus, e.CastleName, e.Scoring = in.sec.typ, in.sec.status, in.event, in.sec.scoring
	default:
		e.CastleType, e.CastleName = "$custom", in.event
	}
	return e
}

// malformed is the Expect of a broken record or item.
func malformed(messageID string) Expect {
	return Expect{MessageID: messageID, Outcome: DeadLetter, Reason: ReasonMalformed}
}
