// Package mapping turns Segment messages into Castle events, or into a
// drop or dead-letter decision with a bounded reason.
//
// Map decodes one record (a Segment message, or an HTTP-API batch envelope,
// judged item by item), applies the filters in order (malformed,
// unsupported type, server-side or mobile, Castle disabled, Secure Mode),
// verifies Secure Mode tokens (HS256 only), and builds the
// Castle event: $page, $custom, or a security event (Castle's legacy names
// and the operator's EVENT_MAP). An Event says where a scoring worker
// would send it (Scoring) and encodes its /v1/log, /v1/risk or /v1/filter
// body (AppendBody). What the mapping cut, converted or left out of a
// message is in Result.Adjusted.
//
// It is pure: bytes, a time and a read-only view of earlier identify
// messages in, a decision out. No I/O, no logging, no metrics, no clock,
// and no state that changes a decision: an identify's Result carries the
// Identity for the caller to keep (in Users) and pass back to later calls.
// Dropping duplicate messageIds is the caller's (the last filter: a
// forwarded message whose messageId was already forwarded). It does not
// send, retry, pace or check an event's age at send time.
//
// The rules, and the choices made where the product contract is silent,
// are in docs/mapping.md; the golden files in testdata show each on a
// message.
package mapping

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/castle-destination/castle-destination/internal/jsonw"
	"github.com/castle-destination/castle-destination/internal/rawjson"
)

// Reason is a bounded drop or dead-letter reason.
type Reason string

// The reasons, in the order the filters apply (docs/mapping.md).
const (
	ReasonMalformed           Reason = "malformed"            // dead letter
	ReasonUnsupportedType     Reason = "unsupported_type"     // drop
	ReasonServerSide          Reason = "server_side"          // drop
	ReasonMobile              Reason = "mobile"               // drop
	ReasonIntegrationDisabled Reason = "integration_disabled" // drop
	ReasonUserJWTInvalid      Reason = "user_jwt_invalid"     // dead letter
	ReasonUserJWTMissing      Reason = "user_jwt_missing"     // drop
	ReasonDuplicate           Reason = "duplicate"            // drop, by the caller's dedupe window
)

// Reasons returns every reason, for pre-initialising metric labels.
func Reasons() []Reason {
	return []Reason{ReasonMalformed, ReasonUnsupportedType, ReasonServerSide, ReasonMobile,
		ReasonIntegrationDisabled, ReasonUserJWTInvalid, ReasonUserJWTMissing, ReasonDuplicate}
}

// Action is what to do with a message.
type Action uint8

// Actions.
const (
	Forward    Action = iota + 1 // Event is set: send it to Castle
	Identified                   // an identify, absorbed into the Users cache
	Drop                         // counted drop, Reason set
	DeadLetter                   // dead letter, Reason and Detail set
)

// PageType is how page messages are sent.
type PageType uint8

// Page types.
const (
	PageAsPage   PageType = iota // type "$page"
	PageAsCustom                 // type "$custom", name = page name or "Page Viewed"
)

// ParsePageType parses "page" or "custom".
func ParsePageType(s string) (PageType, error) {
	switch s {
	case "page", "":
		return PageAsPage, nil
	case "custom":
		return PageAsCustom, nil
	}
	return 0, errors.New(`page type must be "page" or "custom"`)
}

// Config configures a Mapper.
type Config struct {
	// Secret is the Castle API secret, the HS256 key of userJwt. Empty:
	// every userJwt is user_jwt_invalid.
	Secret         []byte
	PageType       PageType
	AcceptMobile   bool
	RequireUserJWT bool
	Version        string // for context.library
	// VerifyAtEventTime checks userJwt exp/nbf at the event's time rather
	// than now (replaying history; tokens were valid when the event
	// happened). Events without a readable time use now.
	VerifyAtEventTime bool
	// Events maps the operator's own track event names to Castle security
	// events (EVENT_MAP); the zero value maps none.
	Events EventMap
}

// Result is the decision for one Segment message.
type Result struct {
	Action    Action
	Reason    Reason // Drop and DeadLetter
	Detail    string // short human detail; never a secret or a token
	MessageID string
	// AnonymousID is Segment's anonymousId, when the message has one.
	AnonymousID string
	Type        string // "page", "track", "identify", "other", or "" when unreadable
	Raw         []byte // this message's bytes (the record, or the envelope item)
	Event       Event  // Forward only
	// Adjusted is what the mapping cut, converted or left out of this
	// message's data by a documented rule (Forward and Identified).
	Adjusted Adjustment
	// Identity is what an identify set (Identified, when it names a user:
	// Identity.ID != ""), for the caller to keep.
	Identity Identity
	// BadSignature: dead-lettered as user_jwt_invalid because an HS256
	// userJwt's signature does not verify under the API secret. That is a
	// forged token, or every token is refused because the secret is not
	// the one the sources sign with: the caller tells them apart.
	BadSignature bool
	// JWTVerified: a userJwt verified under the API secret, which so is
	// the one the sources sign with.
	JWTVerified bool
}

// Mapper maps records. Safe for concurrent use.
type Mapper struct {
	cfg Config
	// tokens remembers verified userJwt claims: a memo of a pure function
	// (the expiry is checked again at every use), not state that changes a
	// decision.
	tokens tokenCache
}

// New returns a Mapper.
func New(cfg Config) *Mapper {
	return &Mapper{cfg: cfg}
}

// Identity is what an identify message says of a user: the user fields its
// traits set and its verified userJwt. The caller keeps identities (Users)
// and hands them back to Map, through a Directory, for that user's later
// messages.
type Identity struct {
	ID    string // the user id
	User  User   // the fields set; User.ID is empty
	Token string // the verified userJwt, "" when none
}

// Directory returns the identity last kept for a user id (Users).
type Directory interface {
	Lookup(userID string) (Identity, bool)
}

// message is one decoded Segment message; raw fields are sub-slices of the
// record.
type message struct {
	raw                                        []byte
	typ, messageID, userID, anonymousID, event string
	name, category, channel                    string
	timestamp, originalTimestamp, sentAt       string
	receivedAt                                 string
	hasType                                    bool
	integrations, properties, traits           []byte
	context                                    ctxFields
	// batch-level integrations fill in missing keys (context is merged
	// when decoded).
	batchIntegrations []byte
	// batch is the first "batch" member (key matched case-insensitively):
	// an array makes the record an envelope.
	batch []byte
}

// ctxFields are the context keys the mapping reads.
type ctxFields struct {
	ip, userAgent, locale, library, page, traits, castle []byte
}

func decodeCtx(obj []byte) ctxFields {
	var c ctxFields
	rawjson.Members(obj, func(k, v []byte) bool {
		c.member(k, v)
		return true
	})
	return c
}

// member decodes one member, key k (quoted) and value v, of a context.
func (c *ctxFields) member(k, v []byte) {
	switch string(k) {
	case `"ip"`:
		c.ip = v
	case `"userAgent"`:
		c.userAgent = v
	case `"locale"`:
		c.locale = v
	case `"library"`:
		c.library = v
	case `"page"`:
		c.page = v
	case `"traits"`:
		c.traits = v
	default:
		if keyIs(k, "Castle") {
			c.castle = v
		}
	}
}

// under fills c's missing keys from batch (the item's own keys win).
func (c *ctxFields) under(batch *ctxFields) {
	for _, f := range [...]struct {
		dst *[]byte
		src []byte
	}{
		{&c.ip, batch.ip}, {&c.userAgent, batch.userAgent}, {&c.locale, batch.locale}, {&c.library, batch.library},
		{&c.page, batch.page}, {&c.traits, batch.traits}, {&c.castle, batch.castle},
	} {
		if *f.dst == nil {
			*f.dst = f.src
		}
	}
}

// Map decodes one record and appends one Result per Segment message to dst.
// The results' strings and Raw alias raw without copying: the caller must
// not modify raw while it uses them.
func (m *Mapper) Map(dst []Result, raw []byte, now time.Time, users Directory) []Result {
	start := len(dst)
	var nt notes
	ok, depth := scan(raw, &nt)
	if !ok {
		return append(dst, Result{Action: DeadLetter, Reason: ReasonMalformed, Detail: "not valid JSON", Raw: raw})
	}
	if kind(raw) != '{' {
		return append(dst, Result{Action: DeadLetter, Reason: ReasonMalformed, Detail: "not a JSON object", Raw: raw})
	}
	deep := depth > MaxNesting
	msg := decodeMembers(raw, &nt)
	if batch := msg.batch; kind(batch) == '[' {
		// The envelope's context, integrations and sentAt apply to its
		// items.
		bctx, bint, bsent := msg.context, msg.integrations, msg.sentAt
		if deep {
			rawjson.Members(raw, func(k, v []byte) bool {
				if !keyIs(k, "batch") && 1+nesting(v) > MaxNesting {
					ok = false
				}
				return ok
			})
			if !ok {
				return append(dst, Result{Action: DeadLetter, Reason: ReasonMalformed, Detail: tooDeep, Raw: raw})
			}
		}
		rawjson.Elements(batch, func(item []byte) bool {
			if kind(item) != '{' {
				dst = append(dst, Result{Action: DeadLetter, Reason: ReasonMalformed, Detail: "batch item is not a JSON object", Raw: item})
				return true
			}
			if deep && nesting(item) > MaxNesting {
				dst = append(dst, Result{Action: DeadLetter, Reason: ReasonMalformed, Detail: tooDeep,
					MessageID: text(field(item, "messageId")), Raw: item})
				return true
			}
			msg := decode(item)
			msg.context.under(&bctx)
			msg.batchIntegrations = bint
			if msg.sentAt == "" {
				msg.sentAt = bsent
			}
			dst = append(dst, m.one(&msg, now, users, dst[start:]))
			return true
		})
		return dst
	}
	if deep {
		return append(dst, Result{Action: DeadLetter, Reason: ReasonMalformed, Detail: tooDeep,
			MessageID: msg.messageID, Raw: raw})
	}
	return append(dst, m.one(&msg, now, users, nil))
}

const tooDeep = "nested deeper than 1024 levels"

func objectOrNil(v []byte) []byte {
	if kind(v) == '{' {
		return v
	}
	return nil
}

// decode decodes the fields of a message the mapping reads.
func decode(raw []byte) message {
	msg := message{raw: raw}
	rawjson.Members(raw, func(k, v []byte) bool {
		msg.member(k, v)
		return true
	})
	return msg
}

// decodeMembers is decode for raw whose members scan noted in nt.
func decodeMembers(raw []byte, nt *notes) message {
	if nt.top.over {
		return decode(raw)
	}
	msg := message{raw: raw}
	for _, a := range nt.top.at[:nt.top.n] {
		k, v := raw[a.ks:a.ke], raw[a.vs:a.ve]
		if a.vs == nt.ctxAt && !nt.ctx.over && string(k) == `"context"` {
			msg.context = ctxFields{}
			for _, c := range nt.ctx.at[:nt.ctx.n] {
				msg.context.member(raw[c.ks:c.ke], raw[c.vs:c.ve])
			}
			continue
		}
		msg.member(k, v)
	}
	return msg
}

// member decodes one member, key k (quoted) and value v, of a message.
// Later members override earlier ones of the same key.
func (msg *message) member(k, v []byte) {
	switch string(k) {
	case `"type"`:
		msg.hasType = kind(v) == '"'
		msg.typ = text(v)
	case `"messageId"`:
		msg.messageID = text(v)
	case `"userId"`:
		msg.userID = text(v)
	case `"anonymousId"`:
		msg.anonymousID = text(v)
	case `"event"`:
		msg.event = text(v)
	case `"name"`:
		msg.name = text(v)
	case `"category"`:
		msg.category = text(v)
	case `"channel"`:
		msg.channel = text(v)
	case `"timestamp"`:
		msg.timestamp = text(v)
	case `"originalTimestamp"`:
		msg.originalTimestamp = text(v)
	case `"sentAt"`:
		msg.sentAt = text(v)
	case `"receivedAt"`:
		msg.receivedAt = text(v)
	case `"context"`:
		msg.context = decodeCtx(objectOrNil(v))
	case `"integrations"`:
		msg.integrations = objectOrNil(v)
	case `"properties"`:
		msg.properties = objectOrNil(v)
	case `"traits"`:
		msg.traits = objectOrNil(v)
	default:
		if msg.batch == nil && keyIs(k, "batch") {
			msg.batch = v
		}
	}
}

// integration returns an integrations key (case-insensitive), the
// message's own first, then the batch's.
func (msg *message) integration(name string) integrationKey {
	if k := integrationOf(msg.integrations, name); k.value != nil {
		return k
	}
	return integrationOf(msg.batchIntegrations, name)
}

// integrationKey is what an integrations object says of one name, whose
// key may appear more than once in different cases ("Castle" and
// "castle"): every opt-out among them is honoured, whatever their order.
type integrationKey struct {
	value  []byte // the first one's value; nil when the name is absent
	off    bool   // one of them is false
	truthy bool   // every one is truthy (JavaScript's rule)
}

func integrationOf(obj []byte, name string) integrationKey {
	k := integrationKey{truthy: true}
	rawjson.Members(obj, func(key, v []byte) bool {
		if keyIs(key, name) {
			if k.value == nil {
				k.value = v
			}
			k.off = k.off || kind(v) == 'f'
			k.truthy = k.truthy && truthy(v)
		}
		return true
	})
	k.truthy = k.truthy && k.value != nil
	return k
}

// serverLibraries and mobileLibraries decide a message without channel by
// its context.library.name (lower-cased).
var (
	serverLibraries = map[string]bool{
		"analytics-node": true, "@segment/analytics-node": true, "analytics-node-next": true,
		"analytics-go": true, "analytics-python": true, "analytics-ruby": true, "analytics-java": true,
		"analytics-php": true, "analytics-dotnet": true, "analytics.net": true, "unknown": true, "": true,
	}
	mobileLibraries = map[string]bool{
		"analytics-ios": true, "analytics-android": true, "analytics-swift": true, "analytics-kotlin": true,
		"analytics-react-native": true, "analytics-flutter": true,
	}
)

// one maps one message. prior are the results of the same record's earlier
// messages: an identify among them sets the user for the later ones, as if
// it had already been kept.
func (m *Mapper) one(msg *message, now time.Time, users Directory, prior []Result) Result {
	r := Result{MessageID: msg.messageID, AnonymousID: msg.anonymousID, Raw: msg.raw}
	// 1. malformed
	if !msg.hasType {
		r.Action, r.Reason, r.Detail = DeadLetter, ReasonMalformed, "no type"
		return r
	}
	// 2. unsupported type
	switch msg.typ {
	case "page", "track", "identify":
		r.Type = msg.typ
	default:
		r.Type = "other"
		r.Action, r.Reason = Drop, ReasonUnsupportedType
		r.Detail = "type " + truncate(msg.typ, 32)
		return r
	}
	// 3. server side, mobile
	switch strings.ToLower(msg.channel) {
	case "server":
		r.Action, r.Reason, r.Detail = Drop, ReasonServerSide, "channel server"
		return r
	case "mobile":
		if !m.cfg.AcceptMobile {
			r.Action, r.Reason, r.Detail = Drop, ReasonMobile, "channel mobile"
			return r
		}
	case "":
		lib := strings.ToLower(text(field(msg.context.library, "name")))
		if serverLibraries[lib] {
			r.Action, r.Reason = Drop, ReasonServerSide
			r.Detail = "library " + truncate(lib, 64)
			if lib == "" {
				r.Detail = "no channel and no library (HTTP API)"
			}
			return r
		}
		if mobileLibraries[lib] && !m.cfg.AcceptMobile {
			r.Action, r.Reason, r.Detail = Drop, ReasonMobile, "library "+lib
			return r
		}
	}
	// 4. integrations
	ci := msg.integration("Castle")
	if ci.off {
		r.Action, r.Reason, r.Detail = Drop, ReasonIntegrationDisabled, "integrations.Castle false"
		return r
	}
	if msg.integration("All").off && !ci.truthy {
		r.Action, r.Reason, r.Detail = Drop, ReasonIntegrationDisabled, "integrations.All false"
		return r
	}
	castle := ci.value
	created := eventTime(msg)
	// 5. Secure Mode
	var rawToken []byte
	if kind(castle) == '{' {
		rawToken = field(castle, "userJwt", "user_jwt")
	}
	if k := kind(rawToken); k == 0 || k == 'n' || k == '"' && text(rawToken) == "" {
		if c := field(msg.context.castle, "userJwt", "user_jwt"); c != nil {
			rawToken = c
		}
	}
	token := ""
	switch kind(rawToken) {
	case 0, 'n':
	case '"':
		token = text(rawToken)
	default:
		r.Action, r.Reason, r.Detail = DeadLetter, ReasonUserJWTInvalid, "userJwt: not a string"
		return r
	}
	verifyAt := now
	if m.cfg.VerifyAtEventTime && !created.IsZero() {
		verifyAt = created
	}
	var user User
	if msg.typ == "identify" {
		return m.identify(msg, r, token, verifyAt)
	}
	cachedToken := ""
	if msg.userID != "" {
		if id, ok := lookup(users, prior, msg.userID); ok {
			user, cachedToken = id.User, id.Token
		}
	}
	user.ID = msg.userID
	if ct := msg.context.traits; kind(ct) == '{' {
		traitsInto(&user, ct, true, &r.Adjusted)
	}
	if token == "" {
		token = cachedToken
	}
	if token != "" {
		claims, err := m.verify(token, verifyAt)
		if err != nil {
			r.Action, r.Reason, r.Detail = DeadLetter, ReasonUserJWTInvalid, "userJwt: "+err.Error()
			r.BadSignature = errors.Is(err, errSignature)
			return r
		}
		r.JWTVerified = true
		claimsInto(&user, claims, &r.Adjusted)
	} else if m.cfg.RequireUserJWT && msg.userID != "" {
		r.Action, r.Reason, r.Detail = Drop, ReasonUserJWTMissing, "userId without userJwt"
		return r
	}
	r.Action = Forward
	r.Event = m.event(msg, user, castle, created, now, &r.Adjusted)
	return r
}

func (m *Mapper) identify(msg *message, r Result, token string, at time.Time) Result {
	var user User
	traits := msg.traits
	if traits == nil {
		traits = objectOrNil(msg.context.traits)
	}
	traitsInto(&user, traits, false, &r.Adjusted)
	user.ID = msg.userID
	if token != "" {
		claims, err := m.verify(token, at)
		if err != nil {
			r.Action, r.Reason, r.Detail = DeadLetter, ReasonUserJWTInvalid, "userJwt: "+err.Error()
			r.BadSignature = errors.Is(err, errSignature)
			return r
		}
		r.JWTVerified = true
		if user.ID == "" {
			user.ID = claimID(claims)
		}
	} else if m.cfg.RequireUserJWT && msg.userID != "" {
		r.Action, r.Reason, r.Detail = Drop, ReasonUserJWTMissing, "userId without userJwt"
		return r
	}
	if user.ID != "" {
		r.Identity.ID = user.ID
		user.ID = ""
		r.Identity.User, r.Identity.Token = user, token
	}
	r.Action = Identified
	return r
}

// lookup returns the identity of userID: from an identify earlier in the
// same record, else from users.
func lookup(users Directory, prior []Result, userID string) (Identity, bool) {
	for i := len(prior) - 1; i >= 0; i-- {
		if r := &prior[i]; r.Action == Identified && r.Identity.ID == userID {
			return r.Identity, true
		}
	}
	if users == nil {
		return Identity{}, false
	}
	return users.Lookup(userID)
}

// traitKeys are the traits that become user fields; the flattener leaves
// out those a message used (bit i for traitKeys[i]). id and userId repeat
// the user id and are always left out.
var traitKeys = []string{"email", "phone", "name", "address", "registeredAt", "createdAt", "id", "userId"}

const (
	tkEmail uint16 = 1 << iota
	tkPhone
	tkName
	tkAddress
	tkRegisteredAt
	tkCreatedAt
	tkID
	tkUserID
)

// traitsInto maps Segment traits onto the user: the known fields, and the
// rest flattened into user.traits. email, phone and name are used when
// they are strings, numbers or booleans, address when it is an object;
// registeredAt, else createdAt, becomes registered_at when it is a time
// (see registeredAt). A trait not used stays in user.traits. With overlay,
// the traits add to those u already has (context.traits over cached ones).
func traitsInto(u *User, traits []byte, overlay bool, adj *Adjustment) {
	if traits == nil {
		return
	}
	var reg, cre []byte
	used := tkID | tkUserID
	rawjson.Members(traits, func(k, v []byte) bool {
		switch string(k) {
		case `"email"`:
			used |= setStr(&u.Email, v, tkEmail)
		case `"phone"`:
			used |= setStr(&u.Phone, v, tkPhone)
		case `"name"`:
			used |= setStr(&u.Name, v, tkName)
		case `"registeredAt"`:
			reg = v
		case `"createdAt"`:
			cre = v
		case `"address"`:
			if kind(v) == '{' {
				if a := address(v); a.valid() {
					u.Address = a
					used |= tkAddress
				} else {
					*adj |= AdjustAddressNoCountry // left in traits
				}
			}
		}
		return true
	})
	if t, ok := registeredAt(reg); ok {
		u.RegisteredAt, used = t, used|tkRegisteredAt
	} else {
		if k := kind(reg); k != 0 && k != 'n' {
			*adj |= AdjustRegisteredAtInvalid
		}
		if t, ok := registeredAt(cre); ok {
			u.RegisteredAt, used = t, used|tkCreatedAt
		} else if k := kind(cre); k != 0 && k != 'n' {
			*adj |= AdjustRegisteredAtInvalid
		}
	}
	f := flattener{skipKeys: traitKeys, skipMask: used}
	if overlay && u.ntraits > 0 {
		f.dst = append(f.dst, u.traits...)
		f.n = u.ntraits
	}
	f.object("", traits, 1)
	u.traits, u.ntraits = f.dst, f.n
	*adj |= f.adj
}

// setStr sets dst from a string, number or boolean and returns bit; it
// returns 0 for anything else (an object, an array, null).
func setStr(dst *string, v []byte, bit uint16) uint16 {
	switch kind(v) {
	case '"', '0', 't', 'f':
		if s := text(v); s != "" {
			*dst = truncate(s, MaxStringLength)
		}
		return bit
	}
	return 0
}

// registeredAt reads a trait or claim as Castle's registered_at, as
// analytics.js does: an ISO 8601 string, or a number or numeric string of
// epoch seconds, milliseconds when its integer part has 13 digits. It
// reports false for anything else or a time outside the years 1970–9999.
func registeredAt(v []byte) (string, bool) {
	var t time.Time
	var ok bool
	switch kind(v) {
	case '"':
		s := unquote(trimWS(v))
		if numeric(s) {
			t, ok = epoch(s)
		} else {
			t, ok = parseTime(s)
		}
	case '0':
		t, ok = epoch(view(trimWS(v)))
	}
	if !ok {
		return "", false
	}
	return t.UTC().Format(jsonw.StampLayout), true
}

// numeric reports whether s is digits, optionally with a fraction.
func numeric(s string) bool {
	digits, dot := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot && digits > 0 && i < len(s)-1:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

// epoch reads a number of seconds, or of milliseconds when its integer
// part has 13 digits, since 1970.
func epoch(s string) (time.Time, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f >= 1e16 {
		return time.Time{}, false
	}
	whole := math.Floor(f)
	var t time.Time
	if intDigits(f) == 13 {
		t = time.UnixMilli(int64(whole)).Add(time.Duration(math.Round((f - whole) * 1e6)))
	} else {
		t = time.Unix(int64(whole), int64(math.Round((f-whole)*1e9)))
	}
	t = t.Round(time.Millisecond).UTC() // a decimal fraction read as a float is a hair off
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, false
	}
	return t, true
}

func intDigits(f float64) int {
	n := 1
	for f >= 10 {
		f /= 10
		n++
	}
	return n
}

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

func address(v []byte) Address {
	var a Address
	rawjson.Members(v, func(k, val []byte) bool {
		s := truncate(text(val), MaxStringLength)
		switch string(k) {
		case `"street"`, `"line1"`:
			a.Line1 = s
		case `"line2"`:
			a.Line2 = s
		case `"city"`:
			a.City = s
		case `"country"`, `"country_code"`, `"countryCode"`:
			a.CountryCode = upperASCII(s)
		case `"state"`, `"region_code"`, `"regionCode"`:
			a.RegionCode = s
		case `"postalCode"`, `"postal_code"`:
			a.PostalCode = s
		}
		return true
	})
	return a
}

func (m *Mapper) event(msg *message, user User, castle []byte, created, now time.Time, adj *Adjustment) Event {
	e := Event{CreatedAt: created, User: user, Library: m.cfg.Version}
	page := msg.context.page
	f := flattener{dst: make([]byte, 0, len(msg.properties)+64)}
	security := false
	if msg.typ == "track" {
		var se SecurityEvent
		if se, security = m.securityEvent(msg.event); security {
			e.Type, e.Status = se.Type, se.Status
		}
	}
	var changeset []byte
	if security && msg.properties != nil {
		changeset = e.reserved(msg.properties, &f)
	}
	if msg.properties != nil {
		f.object("", msg.properties, 1)
	}
	e.split = len(f.dst)
	if changeset != nil {
		f.object("changeset", changeset, 2)
	}
	switch msg.typ {
	case "page":
		e.Type = "$page"
		if m.cfg.PageType == PageAsCustom {
			e.Type = "$custom"
			e.Name = truncate(first(msg.name, "Page Viewed"), MaxNameLength)
		}
		if msg.name != "" && f.seen&seenName == 0 {
			f.add("name", msg.name)
		}
		if msg.category != "" && f.seen&seenCategory == 0 {
			f.add("category", msg.category)
		}
		if kind(page) == '{' {
			rawjson.Members(page, func(k, v []byte) bool {
				var bit uint8
				switch string(k) {
				case `"url"`:
					bit = seenURL
				case `"path"`:
					bit = seenPath
				case `"referrer"`:
					bit = seenReferrer
				case `"title"`:
					bit = seenTitle
				case `"search"`:
					bit = seenSearch
				default:
					return true
				}
				if f.seen&bit == 0 {
					if t := text(v); t != "" {
						f.add(unquote(k), t)
					}
				}
				return true
			})
		}
	case "track":
		if !security {
			e.Type = "$custom"
		}
		e.Name = f.cut(msg.event, MaxNameLength)
		if e.Name == "" {
			e.Name = "Unnamed Event"
		}
	}
	e.props, e.nprops = f.dst, f.n
	*adj |= f.adj
	if ip := text(msg.context.ip); ip != "" {
		if a, ok := publicAddr(ip); !ok {
			*adj |= AdjustIPNotPublic
		} else if e.IP = ip; a.Is4() && strings.Contains(ip, ":") {
			e.IP = a.String() // IPv4-mapped: sent as the IPv4 address it holds
		}
	}
	if e.IP != "" {
		e.UserAgent = truncate(text(msg.context.userAgent), 1024)
		e.Locale = truncate(text(msg.context.locale), 1024)
		if kind(page) == '{' {
			e.Referer = truncate(text(field(page, "referrer")), 1024)
		}
	}
	e.RequestToken = requestToken(msg, castle, created, now, adj)
	return e
}

// reservedKeys are the properties of a security event that Castle has
// fields for: the submitted identifier (email, username, phone: Event.params
// when a non-empty string), changeset and transaction (when objects).
var reservedKeys = []string{"email", "username", "phone", "changeset", "transaction"}

// reserved takes a security event's reserved properties out of props (f
// then leaves them out of the flattened properties) and returns the
// changeset object, if any.
func (e *Event) reserved(props []byte, f *flattener) (changeset []byte) {
	f.skipKeys = reservedKeys
	rawjson.Members(props, func(k, v []byte) bool {
		for i, name := range reservedKeys {
			if !rawKeyIs(k, name) {
				continue
			}
			switch {
			case i < len(e.params):
				if s := text(v); kind(v) == '"' && s != "" {
					e.params[i] = f.cut(s, MaxStringLength)
					f.skipMask |= 1 << i
				}
			case kind(v) == '{' && name == "changeset":
				changeset = v
				if validChangeset(v) {
					e.changeset = appendClean(nil, v, 1, &f.adj)
				} else {
					f.adj |= AdjustReservedInvalid // flattened into properties on every endpoint
				}
				f.skipMask |= 1 << i
			case kind(v) == '{': // transaction
				if validTransaction(v) {
					e.transaction = appendTransaction(nil, v, &f.adj)
					f.skipMask |= 1 << i
				} else {
					f.adj |= AdjustReservedInvalid // stays in properties
				}
			}
		}
		return true
	})
	// The identifier is sent as properties too (on /v1/log and /v1/risk):
	// it counts against MaxKeys.
	for _, p := range e.params {
		if p != "" {
			f.reserved++
		}
	}
	return changeset
}

// Castle's schema for the reserved objects (castle-java's generated
// Transaction, Amount, PaymentMethod, PaymentMethodCard, Address,
// Merchant, MerchantCategory, Changeset and ChangesetEntry models): one it would
// refuse with 422 stays in properties instead, so the event still reaches
// Castle. Changeset's key for the authentication method's type is
// authentication_method.type, with a dot.
var (
	transactionTypes = map[string]bool{"$purchase": true, "$withdrawal": true, "$deposit": true,
		"$transfer": true, "$reward": true, "$sale": true}
	amountTypes   = map[string]bool{"$fiat": true, "$crypto": true}
	changesetKeys = map[string]bool{"password": true, "email": true, "phone": true, "authentication_method.type": true, "name": true}
	// castle-java's generated PaymentMethod (type) and PaymentMethodCard
	// (network, funding).
	paymentMethodTypes = setOf("$aba", "$ach", "$amazon_pay", "$android_pay", "$apple_pay", "$blinc",
		"$boleto", "$card", "$crypto_wallet", "$fps", "$google_pay", "$other", "$paypal", "$samsung_pay",
		"$sen", "$sepa", "$signet", "$wire")
	cardNetworks = setOf("$amex", "$cartes_bancaires", "$diners", "$discover", "$interac", "$jcb",
		"$mastercard", "$other", "$unionpay", "$visa")
	cardFundings = setOf("$credit", "$debit", "$other", "$prepaid")
	// castle-java's generated FiatAmount: a $fiat amount's currency (a
	// $crypto amount's is any string, CryptoAmount).
	fiatCurrencies = setOf(strings.Fields("AED ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BMD BND BOB BRL BSD BWP " +
		"BYN BZD CAD CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ETB EUR FJD FKP " +
		"GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD ISK JMD JOD " +
		"JPY KES KGS KHR KMF KRW KWD KYD KZT LAK LBP LKR LYD MAD MDL MKD MMK MNT MOP MRU " +
		"MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG " +
		"QAR RON RSD RUB RWF SAR SBD SCR SEK SGD SHP SLL SOS SRD STN SVC SZL THB TND TOP " +
		"TRY TTD TWD TZS UAH UGX USD UYU UZS VEF VND VUV WST XAF XCD XOF XPF YER ZAR ZMW")...)
)

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

func nonEmptyString(v []byte) bool { return kind(v) == '"' && text(v) != "" }

func stringOrNull(v []byte) bool { k := kind(v); return k == '"' || k == 'n' }

// castleField returns the raw value of obj's member name as Castle reads
// the object, as JSON decoders do: the key matched exactly, after its
// escapes, and the last of a repeated key winning. Unlike field, which
// reads Segment's keys leniently, it judges what Castle will see.
func castleField(obj []byte, name string) []byte {
	var out []byte
	rawjson.Members(obj, func(k, v []byte) bool {
		if castleKeyIs(k, name) {
			out = v
		}
		return true
	})
	return out
}

// castleKeyIs reports whether the raw key k is name as Castle reads keys:
// exactly, after its escapes.
func castleKeyIs(k []byte, name string) bool {
	return rawKeyIs(k, name) || bytes.IndexByte(k, '\\') >= 0 && unquote(k) == name
}

// amountValue reports whether v is an amount's value (or a transaction's
// base_amount) Castle takes as the mapping sends it: a string, or a
// number written as plain decimal text (digits, a sign, a point; no
// exponent; at most MaxStringLength of them), which appendTransaction
// sends as that text.
func amountValue(v []byte) bool {
	switch kind(v) {
	case '"':
		return true
	case '0':
		return plainDecimal(trimWS(v))
	}
	return false
}

// plainDecimal reports whether the raw JSON number n has no exponent and
// is no longer than any string the mapping sends.
func plainDecimal(n []byte) bool { return len(n) <= MaxStringLength && !bytes.ContainsAny(n, "eE") }

// appendTransaction appends the transaction object v as appendClean does,
// its base_amount and its amount's value, given as JSON numbers, sent as
// the decimal text they were written as: Castle's Transaction and Amount
// take them as strings ("100.00"), and a Segment track often carries
// them as numbers. A $fiat amount's currency and every address's
// country_code (shipping_address, payment_method.billing_address,
// merchant.address) go in capitals, as validTransaction took them ("usd"
// as "USD"). A member Castle types as an object whose last copy is null
// is left out, every copy of its key (nullObjects). Keys are read as
// Castle reads them (castleKeyIs); every other repeat of a key is
// written, and Castle reads the last.
func appendTransaction(dst, v []byte, adj *Adjustment) []byte {
	null := nullObjectsOf(v, "amount", "payment_method", "shipping_address", "merchant")
	return appendCleanWith(dst, v, 1, adj, func(dst, k, val []byte) ([]byte, bool) {
		switch {
		case null.has(k):
			return nil, true
		case castleKeyIs(k, "base_amount"):
			return appendDecimalText(dst, val)
		case castleKeyIs(k, "amount") && kind(val) == '{':
			fiat := text(castleField(val, "type")) == "$fiat"
			return appendCleanWith(dst, val, 2, adj, func(dst, k, val []byte) ([]byte, bool) {
				switch {
				case castleKeyIs(k, "value"):
					return appendDecimalText(dst, val)
				case fiat && castleKeyIs(k, "currency") && kind(val) == '"':
					if c := upperASCII(text(val)); fiatCurrencies[c] {
						return appendString(dst, c), true
					}
				}
				return dst, false
			}), true
		case castleKeyIs(k, "shipping_address"):
			return appendAddress(dst, val, 2, adj)
		case castleKeyIs(k, "payment_method") && kind(val) == '{':
			return appendHolder(dst, val, adj, "billing_address", "card")
		case castleKeyIs(k, "merchant") && kind(val) == '{':
			return appendHolder(dst, val, adj, "address", "category")
		}
		return dst, false
	})
}

// appendHolder appends a transaction's payment_method or merchant, val
// (at depth 2): its address member, addr, as appendAddress does, and
// without addr or obj (its other object member) when null.
func appendHolder(dst, val []byte, adj *Adjustment, addr, obj string) ([]byte, bool) {
	null := nullObjectsOf(val, addr, obj)
	return appendCleanWith(dst, val, 2, adj, func(dst, k, v []byte) ([]byte, bool) {
		switch {
		case null.has(k):
			return nil, true
		case castleKeyIs(k, addr):
			return appendAddress(dst, v, 3, adj)
		}
		return dst, false
	}), true
}

// nullObjects names the members of an object that Castle types as
// objects and that are null there, as Castle reads a repeated key: the
// last copy (castleField). Castle's schema takes an object there, not
// null: it refuses null where it takes a string (its 422 for a null
// request_token), and a null object would be refused alike (inferred).
// Null says no more than leaving the member out, so the member is left
// out, with every copy of its key: were only the null left out, Castle
// would read an earlier copy.
type nullObjects struct {
	names []string
	null  uint64 // bit i: names[i] is null
}

// nullObjectsOf reads obj once, for names (at most 64), so that leaving
// members out costs one pass however often a key is repeated, not one
// for every copy.
func nullObjectsOf(obj []byte, names ...string) nullObjects {
	n := nullObjects{names: names}
	rawjson.Members(obj, func(k, v []byte) bool {
		if i := n.index(k); i >= 0 {
			if kind(v) == 'n' {
				n.null |= 1 << i
			} else {
				n.null &^= 1 << i
			}
		}
		return true
	})
	return n
}

// index is the index in n.names of the raw key k, as Castle reads keys
// (castleKeyIs), or -1.
func (n nullObjects) index(k []byte) int {
	for i, name := range n.names {
		if castleKeyIs(k, name) {
			return i
		}
	}
	return -1
}

// has reports whether the raw key k is one of n's names whose last copy
// is null: every copy of k is to be left out.
func (n nullObjects) has(k []byte) bool {
	i := n.index(k)
	return i >= 0 && n.null&(1<<i) != 0
}

// appendAddress appends the address object val (at depth) as appendClean
// does, a country_code of two ASCII letters in capitals ("us" as "US"),
// as the mapping sends user.address; it returns false for any other
// value, to leave it to appendClean.
func appendAddress(dst, val []byte, depth int, adj *Adjustment) ([]byte, bool) {
	if kind(val) != '{' {
		return dst, false
	}
	return appendCleanWith(dst, val, depth, adj, func(dst, k, val []byte) ([]byte, bool) {
		if !castleKeyIs(k, "country_code") || kind(val) != '"' {
			return dst, false
		}
		c := upperASCII(text(val))
		if !countryCode(c) {
			return dst, false
		}
		return appendString(dst, c), true
	}), true
}

// upperASCII is s with its ASCII letters in capitals and nothing else
// changed: an ISO code as Segment sources write it ("us", "usd") becomes
// the code Castle takes. strings.ToUpper would also make "I" of a dotless
// "ı" and "S" of a long "ſ", a code of a string that is none ("ınr" as
// "INR"). s itself is returned, with no copy, when it has no lower-case
// ASCII letter.
func upperASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'a' <= b[j] && b[j] <= 'z' {
					b[j] -= 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// appendDecimalText appends the raw JSON number val as a JSON string of
// its text when it is plain decimal text, and otherwise returns false to
// leave val to appendClean.
func appendDecimalText(dst, val []byte) ([]byte, bool) {
	if kind(val) != '0' || !plainDecimal(trimWS(val)) {
		return dst, false
	}
	return appendString(dst, view(trimWS(val))), true
}

// validTransaction reports whether a transaction object has what Castle
// requires: a non-empty id, a type it knows, if any, a base_amount that
// is a string or a number appendTransaction sends as one, and, when there
// is an amount, an object with a type it knows and, if any, a value of
// the same kind (castle-java's generated Amount does not require one),
// and a string currency, required with a value (for $fiat, one of
// fiatCurrencies in ASCII letters of either case: appendTransaction sends
// it in capitals); and a payment_method, shipping_address and merchant,
// if any, valid too. Keys are read as Castle reads them (castleField).
func validTransaction(v []byte) bool {
	id := castleField(v, "id")
	typ := castleField(v, "type")
	if !nonEmptyString(id) || kind(typ) != '"' || !transactionTypes[text(typ)] {
		return false
	}
	if base := castleField(v, "base_amount"); base != nil && !amountValue(base) {
		return false
	}
	amount := castleField(v, "amount")
	switch kind(amount) {
	case 0, 'n':
	case '{':
		at := castleField(amount, "type")
		if kind(at) != '"' || !amountTypes[text(at)] {
			return false
		}
		value, currency := castleField(amount, "value"), castleField(amount, "currency")
		if !(value == nil || amountValue(value)) || !(currency == nil || kind(currency) == '"') {
			return false
		}
		if value != nil && currency == nil { // "required when value is provided"
			return false
		}
		if currency != nil && text(at) == "$fiat" && !fiatCurrencies[upperASCII(text(currency))] {
			return false
		}
	default:
		return false
	}
	return validPaymentMethod(castleField(v, "payment_method")) &&
		validAddress(castleField(v, "shipping_address")) &&
		validMerchant(castleField(v, "merchant"))
}

// absent reports whether a member is missing or null: appendTransaction
// leaves a null object out (nullObjects).
func absent(v []byte) bool { k := kind(v); return k == 0 || k == 'n' }

// stringMembers reports whether obj's named members, where there, are
// strings (null is not one).
func stringMembers(obj []byte, names ...string) bool {
	for _, n := range names {
		if v := castleField(obj, n); v != nil && kind(v) != '"' {
			return false
		}
	}
	return true
}

// oneOf reports whether v, where there, is a string in enum.
func oneOf(v []byte, enum map[string]bool) bool {
	return v == nil || kind(v) == '"' && enum[text(v)]
}

// integer reports whether v is a number appendClean sends as written and
// Castle takes as an integer: no fraction, no exponent, within float64.
func integer(v []byte) bool {
	n := trimWS(v)
	return kind(v) == '0' && !bytes.ContainsAny(n, ".eE") && finite(n)
}

// validPaymentMethod reports whether a transaction's payment_method, if
// any, is one Castle takes (castle-java's generated PaymentMethod and
// PaymentMethodCard): a type of its enum; string fingerprint,
// holder_name, bank_name and country_code; a valid billing_address; a
// card with string bin and last4, integer exp_month and exp_year, and a
// network and funding of their enums. Other members are Castle's to
// ignore (castle-node's typings allow any).
func validPaymentMethod(v []byte) bool {
	if absent(v) {
		return true
	}
	if kind(v) != '{' {
		return false
	}
	if typ := castleField(v, "type"); typ == nil || !oneOf(typ, paymentMethodTypes) ||
		!stringMembers(v, "fingerprint", "holder_name", "bank_name", "country_code") ||
		!validAddress(castleField(v, "billing_address")) {
		return false
	}
	card := castleField(v, "card")
	if absent(card) {
		return true
	}
	if kind(card) != '{' || !stringMembers(card, "bin", "last4") ||
		!oneOf(castleField(card, "network"), cardNetworks) || !oneOf(castleField(card, "funding"), cardFundings) {
		return false
	}
	for _, n := range []string{"exp_month", "exp_year"} {
		if e := castleField(card, n); e != nil && !integer(e) {
			return false
		}
	}
	return true
}

// validAddress reports whether an address (a shipping_address, a billing
// or merchant address), if any, is one Castle takes once appendAddress
// has written it (castle-java's generated Address): a country_code of two
// letters, and string line1, line2, city, region_code, postal_code and
// fingerprint.
func validAddress(v []byte) bool {
	if absent(v) {
		return true
	}
	cc := castleField(v, "country_code")
	return kind(v) == '{' && kind(cc) == '"' && countryCode(upperASCII(text(cc))) &&
		stringMembers(v, "line1", "line2", "city", "region_code", "postal_code", "fingerprint")
}

// validMerchant reports whether a transaction's merchant, if any, is one
// Castle takes (castle-java's generated Merchant and MerchantCategory):
// string id and name, a category, if any, of string code and
// description, and a valid address.
func validMerchant(v []byte) bool {
	if absent(v) {
		return true
	}
	if kind(v) != '{' || !stringMembers(v, "id", "name") || !validAddress(castleField(v, "address")) {
		return false
	}
	c := castleField(v, "category")
	return absent(c) || kind(c) == '{' && stringMembers(c, "code", "description")
}

// validChangeset reports whether a changeset names only fields Castle
// knows, each {"from": …, "to": …} (strings or null: castle-java's
// ChangesetEntry) or {"changed": true}, keys read as Castle reads them
// (castleField). password is {"changed": true} only: castle-java's
// Changeset types it ChangedChangesetEntry.
func validChangeset(v []byte) bool {
	ok := true
	rawjson.Members(v, func(k, e []byte) bool {
		if !changesetKeys[text(k)] || kind(e) != '{' {
			ok = false
			return false
		}
		from, to, changed := castleField(e, "from"), castleField(e, "to"), castleField(e, "changed")
		n := 0
		rawjson.Members(e, func([]byte, []byte) bool { n++; return true })
		switch {
		case stringOrNull(from) && stringOrNull(to) && n == 2 && text(k) != "password":
		case kind(changed) == 't' && n == 1:
		default:
			ok = false
		}
		return ok
	})
	return ok
}

// TokenLifetime is how long a Castle request token lives after it is
// minted. The mapping keeps a request token only when the event's time is
// within TokenLifetime of now, so a token Castle would refuse is not sent.
const TokenLifetime = 120 * time.Second

// requestToken is the message's Castle request token when it is fresh:
// integrations.Castle.requestToken (or request_token), else the same in
// context.Castle, keys matched case-insensitively. A token that is not a
// string is ignored; a string token is left out when the event's time is
// unknown or more than TokenLifetime away from now. Both are recorded in
// adj.
func requestToken(msg *message, castle []byte, created, now time.Time, adj *Adjustment) string {
	var raw []byte
	if kind(castle) == '{' {
		raw = field(castle, "requestToken", "request_token")
	}
	if k := kind(raw); (k == 0 || k == 'n') && kind(msg.context.castle) == '{' {
		raw = field(msg.context.castle, "requestToken", "request_token")
	}
	switch kind(raw) {
	case 0, 'n':
		return ""
	case '"':
	default:
		*adj |= AdjustTokenNotString
		return ""
	}
	tok := text(raw)
	if tok == "" {
		return ""
	}
	if d := now.Sub(created); created.IsZero() || d > TokenLifetime || d < -TokenLifetime {
		*adj |= AdjustTokenStale
		return ""
	}
	return truncate(tok, 4096)
}

// eventTime is created_at: timestamp, else receivedAt - (sentAt
// - originalTimestamp) when that is within the years parseTime takes,
// else originalTimestamp. Zero when none parses.
func eventTime(msg *message) time.Time {
	if t, ok := parseTime(msg.timestamp); ok {
		return t
	}
	orig, okO := parseTime(msg.originalTimestamp)
	if recv, ok := parseTime(msg.receivedAt); ok && okO {
		if sent, ok := parseTime(msg.sentAt); ok {
			// A skew of 292 years or more saturates: no time.
			if d := orig.Sub(sent); d != math.MaxInt64 && d != math.MinInt64 {
				if t := recv.Add(d); inYears(t) {
					return t
				}
			}
		}
	}
	if okO {
		return orig
	}
	return time.Time{}
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-1-2T15:4:5Z07:00",
	"2006-1-2T15:4:5Z0700",
	"2006-1-2T15:4:5Z07",
	"2006-1-2T15:4:5",
	"2006-1-2T15:4Z07:00",
	"2006-1-2T15:4Z0700",
	"2006-1-2T15:4",
	"2006-1-2 15:4:5Z07:00",
	"2006-1-2 15:4:5Z0700",
	"2006-1-2 15:4:5",
	"2006-1-2 15:4:5 -0700 MST",      // Go's time.String, as in some originalTimestamp values
	"2006-1-2 15:4:5 -0700",          // Ruby's Time#to_s (JSON.generate of a Time)
	"2006-1-2 15:4:5 UTC",            // the same for a time in UTC
	"Mon, 2 Jan 2006 15:04:05 GMT",   // RFC 1123 (HTTP dates, JavaScript's toUTCString)
	"Mon, 2 Jan 2006 15:04:05 -0700", // RFC 1123 with a numeric zone
	"2006-1-2",                       // a date, midnight UTC (as JavaScript's Date reads it)
}

// parseTime parses Segment's ISO 8601 times leniently: with or without
// fractional seconds, seconds, zone (Z, +02:00, +0200, +02), or zero
// padding; a date alone; Go's time.String form that some server
// libraries put in originalTimestamp, its monotonic " m=+…" suffix
// dropped; Ruby's Time#to_s; and RFC 1123 with GMT or a numeric zone (a
// zone named only by its abbreviation is no time: its offset is unknown).
// RFC 3339's T and Z may be lower case. A time outside the years
// 1970-9999 in UTC is none.
func parseTime(s string) (time.Time, bool) {
	if s == "" || len(s) > 96 {
		return time.Time{}, false
	}
	if i := strings.Index(s, " m="); i > 0 {
		s = s[:i]
	}
	if t, ok := parseLayouts(s); ok || !strings.ContainsAny(s, "tz") {
		return t, ok
	}
	// RFC 3339 (section 5.6) allows t and z in lower case: rare enough to
	// be tried last, off the common path.
	return parseLayouts(strings.Map(upperTZ, s))
}

// parseLayouts parses s in the first of timeLayouts that reads it, within
// the years 1970-9999 in UTC.
func parseLayouts(s string) (time.Time, bool) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			// Bounded in UTC, as sent: 9999-12-31T23:59:59-14:00 is in
			// the year 10000, which RFC 3339 cannot write.
			if t = t.UTC(); !inYears(t) {
				return time.Time{}, false
			}
			return t, true
		}
	}
	return time.Time{}, false
}

// upperTZ maps RFC 3339's lowercase t and z to upper case (strings.Map).
func upperTZ(r rune) rune {
	if r == 't' || r == 'z' {
		return r - 'a' + 'A'
	}
	return r
}

// inYears reports whether t (UTC) is within the years 1970-9999: a time
// RFC 3339 can write, and not before the Unix epoch.
func inYears(t time.Time) bool {
	y := t.Year()
	return y >= 1970 && y <= 9999
}
