package traffic

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"strconv"
	"strings"

	analytics "github.com/segmentio/analytics-go/v3"
)

// single builds one non-envelope record of kind k. The ring entry is non-nil
// for a forwardable record a later duplicate may copy.
func (g *Generator) single(k kind) (Record, *ringEntry) {
	switch k {
	case kindPage, kindTrack:
		return g.forwardable(k)
	case kindIdentify:
		return g.identify(), nil
	case kindDuplicate:
		if g.ringN == 0 {
			return g.forwardable(kindPage) // nothing to copy yet
		}
		return g.duplicate(), nil
	case kindUnsupported:
		return g.unsupported(), nil
	case kindServerSide:
		return g.serverSide(), nil
	case kindMobile:
		return g.mobile(), nil
	case kindDisabled:
		return g.disabled(), nil
	case kindJWTInvalid:
		if u := g.pickSecureUser(); u != nil {
			return g.jwtInvalid(u), nil
		}
		return g.forwardable(kindPage)
	case kindMalformed:
		return g.malformed(), nil
	case kindSecurity:
		return g.security(), nil
	}
	panic("traffic: unknown kind " + strconv.Itoa(int(k))) // unreachable
}

func record(key, value []byte, g *Generator, in intent) Record {
	return Record{Key: key, Value: value, Time: g.clock, Expects: []Expect{in.expect()}}
}

// clientChannel is the channel Segment stamps on a browser message: mostly
// "client", some "browser", some none (a raw analytics.js payload).
func (g *Generator) clientChannel() string {
	switch x := g.rng.IntN(100); {
	case x < 90:
		return "client"
	case x < 95:
		return "browser"
	default:
		return ""
	}
}

// enabling is an integrations object that leaves Castle enabled.
func (g *Generator) enabling() integ {
	switch x := g.rng.IntN(100); {
	case x < 80:
		return integ{}
	case x < 88:
		return integ{all: on}
	case x < 95:
		return integ{mixpanel: off}
	default:
		return integ{all: off, castle: on} // All off, Castle explicitly on
	}
}

// disabling is an integrations object that disables Castle.
func (g *Generator) disabling() integ {
	switch g.rng.IntN(6) {
	case 0:
		return integ{castle: off}
	case 1:
		return integ{castle: off, castleKey: "castle"}
	case 2:
		return integ{all: off}
	case 3:
		return integ{all: off, allKey: "all"}
	case 4:
		return integ{all: off, mixpanel: on}
	default:
		return integ{all: on, castle: off}
	}
}

// secureMode fills in m's token for a Secure Mode user: valid, mostly in
// integrations.Castle (10% of those with "All": false beside it), a fifth in
// context.Castle.
func (g *Generator) secureMode(m *clientMsg, k jwtKind) {
	m.jwt = k
	if g.rng.IntN(5) == 0 {
		m.ctxJWT = true
		return
	}
	m.integ = integ{}
	if g.rng.IntN(10) == 0 {
		m.integ.all = off
	}
}

// forwardable is an analytics.js page or track meant to be forwarded.
func (g *Generator) forwardable(k kind) (Record, *ringEntry) {
	m := clientMsg{typ: "page", channel: g.clientChannel(), lib: &libAJS, recv: g.clock, integ: g.enabling()}
	if k == kindTrack {
		m.typ = "track"
	}
	if g.rng.Float64() < g.cfg.Mix.Anonymous {
		m.u = g.pickVisitor()
	} else {
		m.u = g.pickUser()
		if m.u.secure {
			g.secureMode(&m, jwtValid)
			m.noUser = g.rng.IntN(20) == 0 // the token alone names the user
		}
	}
	v, in := g.build(m)
	key := m.u.key()
	if m.noUser {
		key = m.u.anonKey()
	}
	r := record(key, v, g, in)
	return r, &ringEntry{key: key, value: v, expect: r.Expects[0]}
}

// identify is an analytics.js identify of a registered user.
func (g *Generator) identify() Record {
	m := clientMsg{u: g.pickUser(), typ: "identify", channel: g.clientChannel(), lib: &libAJS, recv: g.clock, integ: g.enabling()}
	if m.u.secure {
		g.secureMode(&m, jwtValid)
	}
	v, in := g.build(m)
	return record(m.u.key(), v, g, in)
}

// duplicate copies a recent forwardable record.
func (g *Generator) duplicate() Record {
	e := g.ring[g.rng.IntN(g.ringN)]
	x := Expect{MessageID: e.expect.MessageID, Type: e.expect.Type, Outcome: Drop, Reason: ReasonDuplicate}
	return Record{Key: bytes.Clone(e.key), Value: bytes.Clone(e.value), Time: g.clock, Expects: []Expect{x}}
}

// unsupported is a screen (from a mobile library), group or alias.
func (g *Generator) unsupported() Record {
	switch x := g.rng.IntN(100); {
	case x < 40:
		u := g.pickMobileUser()
		v, in := g.mobileMsg(u, "screen")
		return record(u.key(), v, g, in)
	case x < 75:
		m := clientMsg{u: g.pickUser(), typ: "group", channel: "client", lib: &libAJS, recv: g.clock}
		v, in := g.build(m)
		return record(m.u.key(), v, g, in)
	default:
		m := clientMsg{u: g.pickUser(), typ: "alias", channel: "client", lib: &libAJS, recv: g.clock}
		v, in := g.build(m)
		return record(m.u.key(), v, g, in)
	}
}

func (g *Generator) pickMobileUser() *user {
	if g.rng.IntN(3) == 0 {
		return g.pickVisitor()
	}
	return g.pickUser()
}

// disabled is an analytics.js page, track or identify whose integrations
// disable Castle. A Secure Mode user's message also carries a token in
// context.Castle, a fifth of them expired: rule 4 decides first.
func (g *Generator) disabled() Record {
	m := clientMsg{typ: "page", channel: g.clientChannel(), lib: &libAJS, recv: g.clock, integ: g.disabling()}
	switch x := g.rng.IntN(100); {
	case x < 35:
		m.typ = "track"
	case x < 50:
		m.typ = "identify"
	}
	if m.typ != "identify" && g.rng.IntN(10) < 3 {
		m.u = g.pickVisitor()
	} else {
		m.u = g.pickUser()
	}
	if m.u.secure {
		m.jwt, m.ctxJWT = jwtValid, true
		if m.typ != "identify" && g.rng.IntN(5) == 0 {
			m.jwt = jwtExpired
		}
	}
	v, in := g.build(m)
	return record(m.u.key(), v, g, in)
}

// jwtInvalid is a Secure Mode user's page or track with a bad token.
func (g *Generator) jwtInvalid(u *user) Record {
	m := clientMsg{u: u, typ: "page", channel: g.clientChannel(), lib: &libAJS, recv: g.clock}
	if g.rng.IntN(2) == 0 {
		m.typ = "track"
	}
	g.secureMode(&m, jwtValid+1+jwtKind(g.rng.IntN(int(numJWTKinds-jwtValid-1))))
	v, in := g.build(m)
	return record(u.key(), v, g, in)
}

// serverSide is a message from a server library: channel "server", or no
// channel and a server library.
func (g *Generator) serverSide() Record {
	u := g.pickUser()
	var lib library
	channel := ""
	if g.rng.IntN(2) == 0 {
		channel = "server"
		lib = serverChannelLibs[g.rng.IntN(len(serverChannelLibs))]
	} else {
		lib = serverNoChannelLibs[g.rng.IntN(len(serverNoChannelLibs))]
	}
	typ := "track"
	switch x := g.rng.IntN(100); {
	case x < 25:
		typ = "identify"
	case x < 30:
		typ = "page"
	}
	v, in := g.serverMsg(u, typ, &lib, channel, false)
	return record(u.key(), v, g, in)
}

// serverMsg builds a server library's message. lib nil leaves the library
// out (an analytics-go envelope item); raw leaves Segment's enrichment out.
func (g *Generator) serverMsg(u *user, typ string, lib *library, channel string, raw bool) ([]byte, intent) {
	st := g.stamps(&user{}, g.clock) // servers keep good time
	id := uuid(g.rng)
	if lib != nil && strings.Contains(lib.name, "node") {
		id = "node-next-" + strconv.FormatInt(st.orig.UnixMilli(), 10) + "-" + id
	}
	in := intent{typ: typ, messageID: id, userID: u.id, channel: channel}
	var ctx *analytics.Context
	if lib != nil {
		in.library = lib.name
		ctx = &analytics.Context{Library: analytics.LibraryInfo{Name: lib.name, Version: lib.version}}
	}
	ts := st.ts
	if raw {
		ts = st.orig
	}
	var msg any
	switch typ {
	case "track":
		in.event = serverEvents[g.rng.IntN(len(serverEvents))]
		props := g.newProps().Set("trace_id", id).Set("source", "billing-service")
		if strings.Contains(in.event, "Order") || strings.Contains(in.event, "Invoice") {
			props.SetRevenue(float64(1000+g.rng.IntN(50000)) / 100).SetCurrency("USD")
		}
		msg = analytics.Track{Type: typ, MessageId: id, UserId: u.id, Event: in.event, Timestamp: ts, Context: ctx, Properties: props}
	case "identify":
		msg = analytics.Identify{Type: typ, MessageId: id, UserId: u.id, Timestamp: ts, Context: ctx, Traits: g.traits(u)}
	case "page": // server-rendered page views, as some backends send
		p := pages[g.rng.IntN(len(pages))]
		msg = analytics.Page{Type: typ, MessageId: id, UserId: u.id, Name: p.name, Timestamp: ts, Context: ctx,
			Properties: g.newProps().SetPath(p.path).SetURL(site+p.path).SetTitle(p.title).Set("trace_id", id)}
	case "group":
		msg = analytics.Group{Type: typ, MessageId: id, UserId: u.id, GroupId: "org_" + base62(g.rng, 10), Timestamp: ts, Context: ctx}
	case "alias":
		msg = analytics.Alias{Type: typ, MessageId: id, PreviousId: u.anon, UserId: u.id, Timestamp: ts, Context: ctx}
	}
	if raw {
		return g.encodeOut(msg, nil), in
	}
	return g.encodeOut(msg, func(w *fieldWriter) {
		if channel != "" {
			w.str("channel", channel)
		}
		w.stamps(st)
	}), in
}

// mobile is a track or identify from a mobile library, channel "mobile".
func (g *Generator) mobile() Record {
	typ := "track"
	if g.rng.IntN(4) == 0 {
		typ = "identify"
	}
	var u *user
	if typ == "identify" {
		u = g.pickUser()
	} else {
		u = g.pickMobileUser()
	}
	v, in := g.mobileMsg(u, typ)
	return record(u.key(), v, g, in)
}

func (g *Generator) mobileMsg(u *user, typ string) ([]byte, intent) {
	lib := mobileLibs[g.rng.IntN(len(mobileLibs))]
	st := g.stamps(u, g.clock)
	id := uuid(g.rng)
	ctx := &analytics.Context{
		Library:  analytics.LibraryInfo{Name: lib.name, Version: lib.version},
		IP:       u.ip,
		Locale:   u.loc.locale,
		Timezone: u.loc.timezone,
		App:      analytics.AppInfo{Name: "Acme Outfitters", Version: "4.12.0", Build: "4120", Namespace: "com.acme.outfitters"},
		Network:  analytics.NetworkInfo{WIFI: g.rng.IntN(3) > 0, Carrier: "T-Mobile"},
	}
	if lib.name == "analytics-kotlin" {
		ctx.Device = analytics.DeviceInfo{Id: uuid(g.rng), Manufacturer: "Google", Model: "Pixel 8", Type: "android"}
		ctx.OS = analytics.OSInfo{Name: "Android", Version: "14"}
		ctx.Screen = analytics.ScreenInfo{Width: 1080, Height: 2400, Density: 3}
	} else {
		id = strings.ToUpper(id)
		ctx.Device = analytics.DeviceInfo{Id: strings.ToUpper(uuid(g.rng)), Manufacturer: "Apple", Model: "iPhone15,2", Type: "ios"}
		ctx.OS = analytics.OSInfo{Name: "iOS", Version: "17.4.1"}
		ctx.Screen = analytics.ScreenInfo{Width: 390, Height: 844, Density: 3}
	}
	in := intent{typ: typ, messageID: id, userID: u.id, channel: "mobile", library: lib.name}
	var msg any
	switch typ {
	case "screen":
		name := mobileScreens[g.rng.IntN(len(mobileScreens))]
		msg = analytics.Screen{Type: typ, MessageId: id, AnonymousId: u.anon, UserId: u.id, Name: name,
			Timestamp: st.ts, Context: ctx, Properties: g.newProps().SetName(name)}
	case "track":
		in.event = mobileEvents[g.rng.IntN(len(mobileEvents))]
		msg = analytics.Track{Type: typ, MessageId: id, AnonymousId: u.anon, UserId: u.id, Event: in.event,
			Timestamp: st.ts, Context: ctx, Properties: g.newProps().Set("trace_id", id).Set("from_background", false)}
	case "identify":
		msg = analytics.Identify{Type: typ, MessageId: id, AnonymousId: u.anon, UserId: u.id,
			Timestamp: st.ts, Context: ctx, Traits: g.traits(u)}
	}
	return g.encodeOut(msg, func(w *fieldWriter) {
		w.str("channel", "mobile")
		w.stamps(st)
	}), in
}

// malformed is a record the worker cannot read as a Segment message.
func (g *Generator) malformed() Record {
	r := Record{Time: g.clock}
	id := ""
	switch x := g.rng.IntN(100); {
	case x < 30: // a page event cut short
		m := clientMsg{u: g.pickVisitor(), typ: "page", channel: "client", lib: &libAJS, recv: g.clock}
		v, _ := g.build(m)
		r.Value = v[:1+g.rng.IntN(len(v)-1)]
	case x < 34:
		r.Value = []byte(`{"type":"track","event":"Signed In","userId":"` + g.pickUser().id + `",}`)
	case x < 38:
		r.Value = []byte(`{'type': 'page', 'name': 'Home'}`)
	case x < 42:
		r.Value = []byte("POST /v1/t HTTP/1.1\r\nHost: api.segment.io\r\nContent-Type: application/json\r\n\r\n")
	case x < 45: // a producer that compressed the value itself
		m := clientMsg{u: g.pickVisitor(), typ: "track", channel: "client", lib: &libAJS, recv: g.clock}
		v, _ := g.build(m)
		r.Value = gzipped(v)
	case x < 60: // a JSON array holding a message
		m := clientMsg{u: g.pickVisitor(), typ: "page", channel: "client", lib: &libAJS, recv: g.clock}
		v, _ := g.build(m)
		r.Value = append(append([]byte{'['}, v...), ']')
	case x < 65:
		r.Value = []byte(`"page"`)
	case x < 70:
		r.Value = []byte(strconv.Itoa(g.rng.IntN(100000)))
	case x < 75:
		r.Value = []byte(`null`)
	case x < 80:
		r.Value = []byte(`{}`)
	default: // an object without type, messageId readable
		id = uuid(g.rng)
		r.Value = g.encodeOut(analytics.Track{MessageId: id, UserId: g.pickUser().id, Event: "Signed In",
			Timestamp: g.clock, Properties: g.newProps().Set("trace_id", id)}, nil)
	}
	r.Expects = []Expect{malformed(id)}
	return r
}

// gzipped wraps v in a gzip stream holding one stored (uncompressed)
// deflate block (RFC 1951 §3.2.4, RFC 1952): real gzip bytes without the
// cost of a compressor. v must be under 64 KiB.
func gzipped(v []byte) []byte {
	b := make([]byte, 0, len(v)+23)
	b = append(b, 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff) // magic, deflate, no flags/mtime, unknown OS
	b = append(b, 1)                                     // BFINAL=1, BTYPE=00 (stored)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	b = binary.LittleEndian.AppendUint16(b, ^uint16(len(v)))
	b = append(b, v...)
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(v))
	return binary.LittleEndian.AppendUint32(b, uint32(len(v)))
}
