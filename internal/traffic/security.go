package traffic

import (
	"strconv"
	"strings"
	"time"

	analytics "github.com/segmentio/analytics-go/v3"

	"github.com/castle-destination/castle-destination/castleserver"
)

// secKind is one kind of security event (Mix.Security).
type secKind int

const (
	secLogin         secKind = iota // $login.succeeded naming the user, on their own browser
	secLoginFailed                  // $login.failed naming the user (the app knew the account)
	secLoginTypo                    // $login.failed, anonymous, properties.email: the user's, on their own browser
	secLoginStranger                // $login.failed, anonymous, properties.email of no account (a third at disposable domains)
	secSignup                       // $registration.succeeded: a new account, context.traits.email (a quarter at disposable domains)
	secReset                        // $password_reset_request.succeeded naming the user
	secResetAnon                    // $password_reset_request.succeeded, anonymous, properties.email: the user's
	secShared                       // $login.succeeded (a fifth $login.failed) naming the user, on the shared device
	numSecKinds
)

// secWeights are the relative weights of the security event kinds.
var secWeights = [numSecKinds]float64{40, 8, 10, 6, 12, 6, 6, 12}

// securityPages are where the security events happen. They are not in
// pages, so that adding them changes no other stream.
var securityPages = [...]pageInfo{
	{"/login", "Sign in · Acme Outfitters", "Login", "Account"},
	{"/signup", "Create your account · Acme Outfitters", "Sign Up", "Account"},
	{"/password/forgot", "Reset your password · Acme Outfitters", "Forgot Password", "Account"},
}

// loginFailures are the reasons an app gives for a failed login.
var loginFailures = [...]string{"wrong_password", "wrong_password", "wrong_password", "unknown_account", "locked", "mfa_failed"}

// scoringFor is where a scoring worker sends a security event with a fresh
// request token and a public IP (docs/mapping.md, "Scoring: which
// endpoint"): Castle's Risk API when the event names a user and Risk takes
// the type, else its Filter API. Risk does not take
// $password_reset_request; the other types made here it does.
func scoringFor(typ, userID string) string {
	if userID != "" && typ != "$password_reset_request" {
		return ScoringRisk
	}
	return ScoringFilter
}

// sharedDevice is the browser many users sign in on (a family computer, a
// library terminal, or a fraudster's): one device name, user agent and
// public IP, built on first use.
func (g *Generator) sharedDevice() *user {
	if g.shared == nil {
		r := g.subRand(classShared, 0)
		g.shared = &user{anon: uuid(r), ua: userAgents[7], loc: locales[3], ip: ispIP(r)}
		g.shared.device = "shared-" + g.shared.anon[:8]
	}
	return g.shared
}

// deviceName is the device a request token minted on u's browser stands
// for: u's own anonymousId, or the shared device's name.
func (u *user) deviceName() string {
	if u.device != "" {
		return u.device
	}
	return u.anon
}

// liveStamps are the times of a security event: received in the 3 s
// before Now, after up to 1.5 s in the browser's queue and a network
// latency, from u's device clock; and when its request token was minted,
// 0.1 to 2 s before the event (Castle's tokens live 120 s).
func (g *Generator) liveStamps(u *user) (st stamps, minted time.Time) {
	recv := g.cfg.Now.Add(-time.Duration(g.rng.IntN(3000)) * time.Millisecond).Truncate(time.Millisecond)
	latency := time.Duration(20+g.rng.IntN(280)) * time.Millisecond
	delay := time.Duration(g.rng.IntN(1500)) * time.Millisecond
	send := recv.Add(-latency)
	st = stamps{ts: recv.Add(-delay), orig: send.Add(-delay).Add(u.skew), sent: send.Add(u.skew), recv: recv}
	return st, st.ts.Add(-time.Duration(100+g.rng.IntN(1900)) * time.Millisecond)
}

// strangerEmail is an address that belongs to no account: a third at a
// disposable domain.
func (g *Generator) strangerEmail() string {
	local := strings.ToLower(base62(g.rng, 8))
	if g.rng.IntN(3) == 0 {
		return local + "@" + disposableDomains[g.rng.IntN(len(disposableDomains))]
	}
	return local + "@" + emailDomains[g.rng.IntN(len(emailDomains))]
}

// security builds one security event: an analytics.js track named with
// one of Castle's legacy security event names, live (see liveStamps),
// with a request token minted for the browser's device and a public IP.
// A Secure Mode user naming themselves carries their valid userJwt too.
func (g *Generator) security() Record {
	var (
		acct   *user  // the account the event names, nil when anonymous
		dev    *user  // the browser it happened on
		userID string // the userId sent
		email  string // properties.email of an anonymous attempt
		event  string
		page   = securityPages[0]
		reason string
		signup analytics.Traits // context.traits of a new account
	)
	switch k := secKind(pickWeighted(g, secWeights[:])); k {
	case secLogin, secLoginFailed, secReset:
		acct = g.pickUser()
		dev, userID = acct, acct.id
		event = map[secKind]string{secLogin: "$login.succeeded", secLoginFailed: "$login.failed",
			secReset: "$password_reset_request.succeeded"}[k]
		if k == secReset {
			page = securityPages[2]
		}
	case secLoginTypo, secResetAnon:
		u := g.pickUser()
		dev, email, event = u, u.email, "$login.failed"
		if k == secResetAnon {
			event, page = "$password_reset_request.succeeded", securityPages[2]
		}
	case secLoginStranger:
		dev, email, event = g.pickVisitor(), g.strangerEmail(), "$login.failed"
	case secSignup:
		dev, page, event = g.pickVisitor(), securityPages[1], "$registration.succeeded"
		userID = "usr_" + base62(g.rng, 14)
		first, last := firstNames[g.rng.IntN(len(firstNames))], lastNames[g.rng.IntN(len(lastNames))]
		domain := emailDomains[g.rng.IntN(len(emailDomains))]
		if g.rng.IntN(4) == 0 {
			domain = disposableDomains[g.rng.IntN(len(disposableDomains))]
		}
		signup = analytics.Traits{"email": asciiFold(strings.ToLower(first+"."+last)) + strconv.Itoa(g.rng.IntN(1000)) + "@" + domain,
			"name": first + " " + last}
	case secShared:
		acct = g.pickUser()
		dev, userID, event = g.sharedDevice(), acct.id, "$login.succeeded"
		if g.rng.IntN(5) == 0 {
			event = "$login.failed"
		}
	}
	if strings.HasSuffix(event, ".failed") {
		reason = loginFailures[g.rng.IntN(len(loginFailures))]
	}
	typ, status, _ := strings.Cut(event, ".")
	st, minted := g.liveStamps(dev)
	id := "ajs-next-" + strconv.FormatInt(st.orig.UnixMilli(), 10) + "-" + uuid(g.rng)
	in := intent{typ: "track", messageID: id, userID: userID, channel: g.clientChannel(), library: libAJS.name, event: event,
		sec: &secIntent{typ: typ, status: "$" + status, scoring: scoringFor(typ, userID)}}

	// The request token goes where the app put it: mostly
	// integrations.Castle, a quarter context.Castle. A Secure Mode user's
	// userJwt goes beside it or in the other place.
	var ctxCastle map[string]any
	tok := castleserver.NewRequestToken(minted, dev.deviceName())
	if g.rng.IntN(4) == 0 {
		ctxCastle = map[string]any{"requestToken": tok}
	} else {
		in.integ.castle, in.integ.reqToken = object, tok
	}
	if acct != nil && acct.secure {
		in.jwt, in.claimID = jwtValid, acct.id
		if g.rng.IntN(5) == 0 {
			if ctxCastle == nil {
				ctxCastle = map[string]any{}
			}
			ctxCastle["userJwt"] = g.validToken(acct)
		} else {
			in.integ.castle, in.integ.jwt = object, g.validToken(acct)
		}
	}

	v := pageView{info: page, url: site + page.path, referer: site + "/"}
	ctx := g.browserContext(dev, &libAJS, v, ctxCastle)
	if ctx.IP.IsPrivate() { // a home network address: Castle would get no context
		ctx.IP = ispIP(g.rng)
	}
	ctx.Traits = signup
	props := g.newProps().Set("trace_id", id).Set("method", "password")
	if email != "" {
		props.Set("email", email)
	}
	if reason != "" {
		props.Set("reason", reason)
	}
	if signup != nil {
		props.Set("plan", "free")
	}
	anon := dev.anon
	g.track = analytics.Track{Type: "track", MessageId: id, AnonymousId: anon, UserId: userID, Event: event,
		Timestamp: st.ts, Context: ctx, Properties: props, Integrations: in.integ.wire()}
	value := g.encodeOut(&g.track, func(w *fieldWriter) {
		if in.channel != "" {
			w.str("channel", in.channel)
		}
		w.stamps(st)
		w.raw("_metadata", bundledMetadata)
	})
	key := []byte(anon)
	if userID != "" {
		key = []byte(userID)
		if acct != nil {
			key = acct.key()
		}
	}
	return Record{Key: key, Value: value, Time: st.recv, Expects: []Expect{in.expect()}}
}
