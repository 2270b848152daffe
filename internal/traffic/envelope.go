package traffic

import (
	"encoding/json"
	"time"

	analytics "github.com/segmentio/analytics-go/v3"
)

// envelope builds an HTTP-API batch envelope: 70% a browser batch, 30% a
// server batch in analytics-go's wire format.
func (g *Generator) envelope() Record {
	if g.rng.IntN(10) < 7 {
		return g.browserBatch()
	}
	return g.serverBatch()
}

// batchBody is an HTTP-API batch envelope.
type batchBody struct {
	MessageID    string // analytics-go sets one; "" for none
	Batch        []json.RawMessage
	Context      json.RawMessage
	Integrations analytics.Integrations
	SentAt       string
}

// encode writes the envelope; items are copied as they are.
func (b *batchBody) encode() []byte {
	n := 128 + len(b.Context)
	for _, it := range b.Batch {
		n += len(it) + 1
	}
	e := encoder{b: make([]byte, 0, n)}
	e.open()
	e.str("messageId", b.MessageID)
	e.key("batch")
	e.b = append(e.b, '[')
	for i, it := range b.Batch {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.b = append(e.b, it...)
	}
	e.b = append(e.b, ']')
	if len(b.Context) > 0 {
		e.key("context")
		e.b = append(e.b, b.Context...)
	}
	e.mapField("integrations", b.Integrations)
	e.str("sentAt", b.SentAt)
	e.close()
	return e.b
}

func batchSize(g *Generator) int { return 2 + g.rng.IntN(19) }

// badItem is an unreadable batch item and its Expect.
func (g *Generator) badItem() (json.RawMessage, Expect) {
	switch g.rng.IntN(5) {
	case 0:
		return json.RawMessage(`42`), malformed("")
	case 1:
		return json.RawMessage(`"oops"`), malformed("")
	case 2:
		return json.RawMessage(`null`), malformed("")
	default:
		id := uuid(g.rng)
		return json.RawMessage(`{"messageId":"` + id + `","event":"Signed In","properties":{"trace_id":"` + id + `"}}`), malformed(id)
	}
}

// browserBatch is one user's raw analytics.js messages (no channel, no
// Segment enrichment) under a batch-level context.library analytics.js and,
// sometimes, batch-level integrations that disable Castle for every item
// that does not override them.
func (g *Generator) browserBatch() Record {
	var u *user
	if g.rng.IntN(5) == 0 {
		u = g.pickVisitor()
	} else {
		u = g.pickUser()
	}
	var batchInteg integ
	switch g.rng.IntN(5) {
	case 0:
		batchInteg = integ{castle: off}
	case 1:
		batchInteg = integ{all: off}
	}
	disabling := !batchInteg.enabled()
	itemLib := &libAJS
	if g.rng.IntN(2) == 0 {
		itemLib = nil // every item relies on the batch's library
	}
	n := batchSize(g)
	bad := -1
	if g.rng.IntN(100) < 15 {
		bad = g.rng.IntN(n)
	}
	body := batchBody{Batch: make([]json.RawMessage, 0, n), Integrations: batchInteg.wire(),
		Context: json.RawMessage(`{"library":{"name":"` + libAJS.name + `","version":"` + libAJS.version + `"}}`)}
	r := Record{Key: u.key(), Time: g.clock, Expects: make([]Expect, 0, n)}
	for i := range n {
		if i == bad {
			item, e := g.badItem()
			body.Batch = append(body.Batch, item)
			r.Expects = append(r.Expects, e)
			continue
		}
		m := g.browserItem(u, itemLib, disabling)
		v, in := g.build(m)
		in.library = libAJS.name // the item's own, or the batch's
		in.integ = merged(batchInteg, in.integ)
		body.Batch = append(body.Batch, v)
		r.Expects = append(r.Expects, in.expect())
	}
	body.SentAt = stamp(g.clock.Add(-time.Duration(20+g.rng.IntN(280)) * time.Millisecond).Add(u.skew))
	r.Value = body.encode()
	return r
}

// browserItem draws one item of u's browser batch by the Mix weights of the
// kinds a browser batch can hold. Under disabling batch integrations, 30% of
// the page/track/identify items override Castle to true.
func (g *Generator) browserItem(u *user, lib *library, disabling bool) clientMsg {
	m := clientMsg{u: u, lib: lib, raw: true, recv: g.clock}
	mix := g.cfg.Mix
	w := [...]float64{mix.Page, mix.Track, mix.Identify, mix.Unsupported, mix.IntegrationDisabled, mix.UserJWTInvalid}
	if u.id == "" { // visitors never identify, group, alias or sign tokens
		w[2], w[3], w[5] = 0, 0, 0
	}
	if !u.secure {
		w[5] = 0
	}
	k := pickWeighted(g, w[:])
	switch k {
	case 0, 1, 2, -1:
		m.typ = [...]string{"page", "track", "identify"}[max(k, 0)]
		m.integ = g.enabling()
		if disabling && g.rng.IntN(10) < 3 {
			m.integ = integ{castle: on}
		}
		if u.secure {
			g.secureMode(&m, jwtValid)
		}
	case 3:
		m.typ = "group"
		if g.rng.IntN(2) == 0 {
			m.typ = "alias"
		}
	case 4:
		m.typ = "page"
		if g.rng.IntN(2) == 0 {
			m.typ = "track"
		}
		m.integ = g.disabling()
		if u.secure {
			m.jwt, m.ctxJWT = jwtValid, true
		}
	case 5:
		m.typ = "track"
		g.secureMode(&m, jwtValid+1+jwtKind(g.rng.IntN(int(numJWTKinds-jwtValid-1))))
	}
	return m
}

// pickWeighted returns an index drawn by the weights, or -1 if all are zero.
func pickWeighted(g *Generator, w []float64) int {
	total := 0.0
	for _, x := range w {
		total += max(x, 0)
	}
	if total == 0 {
		return -1
	}
	x := g.rng.Float64() * total
	for i, v := range w {
		x -= max(v, 0)
		if x < 0 {
			return i
		}
	}
	return len(w) - 1
}

// serverBatch is analytics-go's wire format: a batch-level messageId,
// sentAt and context.library analytics-go, and items of several users with
// no channel and no library of their own.
func (g *Generator) serverBatch() Record {
	n := batchSize(g)
	bad := -1
	if g.rng.IntN(100) < 15 {
		bad = g.rng.IntN(n)
	}
	body := batchBody{MessageID: uuid(g.rng), Batch: make([]json.RawMessage, 0, n),
		Context: json.RawMessage(`{"library":{"name":"analytics-go","version":"3.0.0"}}`)}
	r := Record{Time: g.clock, Expects: make([]Expect, 0, n)}
	for i := range n {
		if i == bad {
			item, e := g.badItem()
			body.Batch = append(body.Batch, item)
			r.Expects = append(r.Expects, e)
			continue
		}
		u := g.pickUser()
		if r.Key == nil {
			r.Key = u.key()
		}
		typ := "track"
		switch x := g.rng.IntN(100); {
		case x < 25:
			typ = "identify"
		case x < 30:
			typ = "page"
		case x < 35:
			typ = "group"
		case x < 40:
			typ = "alias"
		}
		v, in := g.serverMsg(u, typ, nil, "", true)
		in.library = "analytics-go" // from the batch context
		body.Batch = append(body.Batch, v)
		r.Expects = append(r.Expects, in.expect())
	}
	if r.Key == nil { // every item bad: cannot happen with n >= 2 and one bad item
		r.Key = []byte("analytics-go")
	}
	body.SentAt = stamp(g.clock.Add(-time.Duration(5+g.rng.IntN(50)) * time.Millisecond))
	r.Value = body.encode()
	return r
}

// stamp is t as Segment writes it: "2006-01-02T15:04:05.000Z".
func stamp(t time.Time) string {
	b := appendStamp(make([]byte, 0, 26), t)
	return string(b[1 : len(b)-1])
}
