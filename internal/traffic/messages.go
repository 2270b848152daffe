package traffic

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	analytics "github.com/segmentio/analytics-go/v3"

	"github.com/castle-destination/castle-destination/internal/jsonw"
)

// stamps are a message's four Segment times (research/segment-spec.md §1.4):
// the device clock (skewed) for orig and sent, Segment's for recv, and
// ts = recv - (sent - orig).
type stamps struct {
	ts, orig, sent, recv time.Time
}

// stamps draws the times of a message Segment received at recv from u's
// device: a network latency, a queueing delay (mostly under 1.5 s, some up
// to a minute, a few up to 2 h for offline queues), and u's clock skew.
func (g *Generator) stamps(u *user, recv time.Time) stamps {
	latency := time.Duration(20+g.rng.IntN(280)) * time.Millisecond
	var delay time.Duration
	switch x := g.rng.IntN(100); {
	case x < 85:
		delay = time.Duration(g.rng.IntN(1500)) * time.Millisecond
	case x < 97:
		delay = time.Duration(1500+g.rng.IntN(58500)) * time.Millisecond
	default:
		delay = time.Duration(60+g.rng.IntN(7140)) * time.Second
	}
	send := recv.Add(-latency)
	event := send.Add(-delay)
	return stamps{
		ts:   recv.Add(-delay),
		orig: event.Add(u.skew),
		sent: send.Add(u.skew),
		recv: recv,
	}
}

// pageView is one page of the shop as a browser shows it.
type pageView struct {
	info                 pageInfo
	url, search, referer string
	campaign             *[3]string
}

func (g *Generator) view() pageView {
	p := pages[g.rng.IntN(len(pages))]
	v := pageView{info: p}
	var q []string
	if p.path == "/search" {
		q = append(q, "q="+url.QueryEscape(searchTerms[g.rng.IntN(len(searchTerms))]))
	}
	if g.rng.IntN(10) == 0 {
		c := &campaigns[g.rng.IntN(len(campaigns))]
		v.campaign = c
		q = append(q, "utm_source="+c[0], "utm_medium="+c[1], "utm_campaign="+c[2])
	}
	if len(q) > 0 {
		v.search = "?" + strings.Join(q, "&")
	}
	v.url = site + p.path + v.search
	if g.rng.IntN(3) == 0 {
		v.referer = site + pages[g.rng.IntN(len(pages))].path
	} else {
		v.referer = referrers[g.rng.IntN(len(referrers))]
	}
	return v
}

// uaHints are analytics.js's context.userAgentData for the Chromium user
// agents (indexes into userAgents), as raw JSON.
var uaHints = map[string]json.RawMessage{
	userAgents[0]: json.RawMessage(`{"brands":[{"brand":"Chromium","version":"124"},{"brand":"Google Chrome","version":"124"},{"brand":"Not-A.Brand","version":"99"}],"mobile":false,"platform":"Windows"}`),
	userAgents[1]: json.RawMessage(`{"brands":[{"brand":"Chromium","version":"124"},{"brand":"Google Chrome","version":"124"},{"brand":"Not-A.Brand","version":"99"}],"mobile":false,"platform":"macOS"}`),
	userAgents[5]: json.RawMessage(`{"brands":[{"brand":"Chromium","version":"124"},{"brand":"Google Chrome","version":"124"},{"brand":"Not-A.Brand","version":"99"}],"mobile":true,"platform":"Android"}`),
	userAgents[6]: json.RawMessage(`{"brands":[{"brand":"Chromium","version":"124"},{"brand":"Microsoft Edge","version":"124"},{"brand":"Not-A.Brand","version":"99"}],"mobile":false,"platform":"Windows"}`),
}

// browserContext fills the scratch context with analytics.js's context for
// u on page v. lib nil leaves context.library out (an envelope item relying
// on the batch's); castle, when not nil, is context.Castle (where
// analytics-next puts the userJwt).
func (g *Generator) browserContext(u *user, lib *library, v pageView, castle map[string]any) *analytics.Context {
	c := &g.ctx
	*c = analytics.Context{
		IP:        u.ip,
		Locale:    u.loc.locale,
		Timezone:  u.loc.timezone,
		UserAgent: u.ua,
		Page: analytics.PageInfo{
			Path:     v.info.path,
			Referrer: v.referer,
			Search:   v.search,
			Title:    v.info.title,
			URL:      v.url,
		},
	}
	if lib != nil {
		c.Library = analytics.LibraryInfo{Name: lib.name, Version: lib.version}
	}
	if v.campaign != nil {
		c.Campaign = analytics.CampaignInfo{Source: v.campaign[0], Medium: v.campaign[1], Name: v.campaign[2]}
	}
	h, hints := uaHints[u.ua]
	switch {
	case castle != nil:
		c.Extra = map[string]any{"Castle": castle}
		if hints {
			c.Extra["userAgentData"] = h
		}
	case hints:
		c.Extra = g.hints[u.ua] // shared, never written to
	}
	return c
}

// clientMsg describes one browser message to build.
type clientMsg struct {
	u       *user
	typ     string // page, track, identify, group, alias
	noUser  bool   // leave userId out even for a registered user
	channel string // "" for none
	lib     *library
	integ   integ // the message's own integrations (jwt filled in by build)
	jwt     jwtKind
	ctxJWT  bool // token in context.Castle instead of integrations.Castle
	raw     bool // a raw SDK payload (envelope item): no Segment enrichment
	recv    time.Time
}

// build marshals m and returns its bytes and intent (before any envelope
// merge). Properties carry trace_id = messageId.
func (g *Generator) build(m clientMsg) ([]byte, intent) {
	u := m.u
	st := g.stamps(u, m.recv)
	id := "ajs-next-" + strconv.FormatInt(st.orig.UnixMilli(), 10) + "-" + uuid(g.rng)
	userID := u.id
	if m.noUser {
		userID = ""
	}
	tok := g.token(u, m.jwt)
	in := intent{typ: m.typ, messageID: id, userID: userID, channel: m.channel, jwt: m.jwt, integ: m.integ}
	if m.lib != nil {
		in.library = m.lib.name
	}
	if m.jwt == jwtValid {
		in.claimID = u.id
	}
	var ctxCastle map[string]any
	if tok != "" {
		if m.ctxJWT {
			ctxCastle = map[string]any{"userJwt": tok}
		} else {
			in.integ.castle, in.integ.jwt = object, tok
		}
	}
	v := g.view()
	ctx := g.browserContext(u, m.lib, v, ctxCastle)
	ts := st.ts
	if m.raw {
		ts = st.orig // the SDK's own clock; Segment has not corrected it yet
	}
	var msg any
	category := ""
	switch m.typ {
	case "page":
		props := g.newProps().SetPath(v.info.path).SetReferrer(v.referer).
			SetTitle(v.info.title).SetURL(v.url).SetName(v.info.name).SetCategory(v.info.category).
			Set("search", v.search).Set("trace_id", id)
		category = v.info.category
		g.page = analytics.Page{Type: "page", MessageId: id, AnonymousId: u.anon, UserId: userID, Name: v.info.name,
			Timestamp: ts, Context: ctx, Properties: props, Integrations: in.integ.wire()}
		msg = &g.page
	case "track":
		in.event = g.eventName()
		props := g.trackProperties(in.event, u).Set("trace_id", id)
		g.track = analytics.Track{Type: "track", MessageId: id, AnonymousId: u.anon, UserId: userID, Event: in.event,
			Timestamp: ts, Context: ctx, Properties: props, Integrations: in.integ.wire()}
		msg = &g.track
	case "identify":
		g.ident = analytics.Identify{Type: "identify", MessageId: id, AnonymousId: u.anon, UserId: userID,
			Timestamp: ts, Context: ctx, Traits: g.traits(u), Integrations: in.integ.wire()}
		msg = &g.ident
	case "group":
		msg = analytics.Group{Type: "group", MessageId: id, AnonymousId: u.anon, UserId: userID,
			GroupId: "org_" + base62(g.rng, 10), Timestamp: ts, Context: ctx, Integrations: in.integ.wire(),
			Traits: g.newTraits().SetName("Acme Customer Org").Set("plan", u.plan).Set("employees", 1+g.rng.IntN(500))}
	case "alias":
		msg = analytics.Alias{Type: "alias", MessageId: id, PreviousId: u.anon, UserId: u.id,
			Timestamp: ts, Context: ctx, Integrations: in.integ.wire()}
	default:
		panic("traffic: unknown client message type " + m.typ) // unreachable: callers pass constants
	}
	if m.raw {
		return g.encodeOut(msg, nil), in
	}
	return g.encodeOut(msg, func(w *fieldWriter) {
		if category != "" {
			w.str("category", category)
		}
		if m.channel != "" {
			w.str("channel", m.channel)
		}
		w.stamps(st)
		w.raw("_metadata", bundledMetadata)
	}), in
}

func (g *Generator) eventName() string {
	x := g.rng.IntN(trackWeightTotal)
	for _, e := range trackEvents {
		if x < e.weight {
			return e.name
		}
		x -= e.weight
	}
	return trackEvents[0].name
}

func (g *Generator) product() product { return products[g.rng.IntN(len(products))] }

func lineItems(g *Generator, n int) ([]any, float64) {
	items := make([]any, 0, n)
	total := 0.0
	for range n {
		p := g.product()
		q := 1 + g.rng.IntN(3)
		total += p.price * float64(q)
		items = append(items, map[string]any{
			"product_id": p.id, "sku": p.sku, "name": p.name, "price": p.price, "quantity": q, "category": p.category,
		})
	}
	return items, float64(int(total*100)) / 100
}

// trackProperties are realistic properties for event, with nested objects
// and arrays where real apps send them.
func (g *Generator) trackProperties(event string, u *user) analytics.Properties {
	p := g.newProps()
	switch event {
	case "Product Viewed", "Product Added":
		pr := g.product()
		p.SetProductId(pr.id).SetSKU(pr.sku).SetName(pr.name).SetPrice(pr.price).SetCategory(pr.category).
			Set("brand", pr.brand).SetCurrency("USD").
			SetURL(site+"/products/"+pr.slug).
			Set("image_url", "https://cdn.acme-outfitters.com/img/"+pr.sku+".jpg")
		if event == "Product Added" {
			p.Set("quantity", 1+g.rng.IntN(3)).Set("cart_id", "cart_"+base62(g.rng, 12))
		}
	case "Cart Viewed", "Checkout Started":
		items, total := lineItems(g, 1+g.rng.IntN(4))
		p.Set("cart_id", "cart_"+base62(g.rng, 12)).SetValue(total).SetCurrency("USD").Set("products", items)
	case "Order Completed", "Commande passée ✓", "注文完了":
		items, total := lineItems(g, 1+g.rng.IntN(4))
		p.SetOrderId("ord_"+base62(g.rng, 12)).SetTotal(total).SetRevenue(total).SetShipping(7.5).
			SetTax(float64(int(total*8))/100).SetCurrency("USD").Set("products", items).
			Set("payment", map[string]any{"method": "card", "card_brand": "visa", "last4": fmt.Sprintf("%04d", g.rng.IntN(10000))})
		if g.rng.IntN(4) == 0 {
			p.SetCoupon("SPRING24")
		}
		if event != "Order Completed" {
			p.Set("livraison", "Colissimo — 2 à 3 jours")
		}
	case "Signed In", "Signed Up":
		methods := [...]string{"password", "password", "google", "apple", "sso"}
		p.Set("method", methods[g.rng.IntN(len(methods))]).Set("remember_me", g.rng.IntN(2) == 0).
			Set("mfa", map[string]any{"required": u.secure, "method": "totp"})
		if event == "Signed Up" {
			p.Set("plan", u.plan)
		}
	case "Password Changed", "Email Changed", "Two-Factor Enabled", "Password Reset Requested":
		sources := [...]string{"settings", "reset_link", "support"}
		p.Set("source", sources[g.rng.IntN(len(sources))])
	case "Products Searched":
		p.Set("query", searchTerms[g.rng.IntN(len(searchTerms))]).Set("results", g.rng.IntN(120)).
			Set("filters", []string{"size:M", "color:blue", "in_stock:true"}[:g.rng.IntN(4)])
	case "Payment Info Entered":
		p.Set("checkout_id", "chk_"+base62(g.rng, 12)).Set("payment_method", "card")
	case "Überweisung gesendet":
		p.Set("betrag", 49.9).SetCurrency("EUR").Set("empfänger", "Müller & Söhne GmbH")
	}
	return p
}

// traits are an identify's traits: the reserved ones of the Segment Spec
// plus custom ones (one nested).
func (g *Generator) traits(u *user) analytics.Traits {
	t := g.newTraits().SetEmail(u.email).SetName(u.first+" "+u.last).SetFirstName(u.first).
		SetLastName(u.last).SetPhone(u.phone).SetCreatedAt(u.createdAt).
		Set("address", map[string]any{
			"street": u.addr.street, "city": u.addr.city, "state": u.addr.state,
			"postalCode": u.addr.postalCode, "country": u.addr.country,
		}).
		Set("plan", u.plan).Set("logins", 1+g.rng.IntN(400)).Set("newsletter", g.rng.IntN(2) == 0)
	if g.rng.IntN(3) == 0 {
		t.Set("preferences", map[string]any{"language": u.loc.locale, "theme": "dark"})
	}
	return t
}

// marshal encodes one analytics-go value; they hold only plain values.
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("traffic: encoding %T: %v", v, err)) // unreachable
	}
	return b
}

// fieldWriter appends top-level fields to a marshalled JSON object: the
// Segment-side enrichment analytics-go has no fields for.
type fieldWriter struct{ b []byte }

// bundledMetadata is the _metadata Segment adds to a message from a
// device-mode (bundled) integration setup.
const bundledMetadata = `{"bundled":["Segment.io"],"unbundled":[],"bundledIds":[]}`

// stamps writes the device's and Segment's times of a client message.
func (w *fieldWriter) stamps(st stamps) {
	w.time("originalTimestamp", st.orig)
	w.time("receivedAt", st.recv)
	w.time("sentAt", st.sent)
}

func (w *fieldWriter) key(k string) {
	w.b = append(w.b, ',', '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *fieldWriter) str(k, v string) {
	w.key(k)
	w.b = jsonw.AppendString(w.b, v)
}

// time writes t as Segment does: UTC, always three fraction digits.
func (w *fieldWriter) time(k string, t time.Time) {
	w.key(k)
	w.b = appendStamp(w.b, t)
}

// appendStamp appends t quoted as "2006-01-02T15:04:05.000Z".
func appendStamp(b []byte, t time.Time) []byte {
	return append(jsonw.AppendStamp(append(b, '"'), t), '"')
}

func (w *fieldWriter) raw(k, v string) {
	w.key(k)
	w.b = append(w.b, v...)
}

func (w *fieldWriter) done() []byte { return append(w.b, '}') }
