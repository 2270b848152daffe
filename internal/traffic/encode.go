package traffic

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	analytics "github.com/segmentio/analytics-go/v3"

	"github.com/castle-destination/castle-destination/internal/jsonw"
)

// encoder writes analytics-go messages as JSON without reflection. It
// produces what json.Marshal produces for the same value, up to key order
// and HTML escaping (TestEncoderMatchesJSONMarshal holds it to that):
// encoding/json with analytics-go's reflective Context.MarshalJSON costs
// ~10x more, too much for a million records in a few seconds.
type encoder struct {
	b     []byte
	first bool // no field written yet in the innermost open object
}

func (e *encoder) open()  { e.b = append(e.b, '{'); e.first = true }
func (e *encoder) close() { e.b = append(e.b, '}'); e.first = false }

func (e *encoder) key(k string) {
	if !e.first {
		e.b = append(e.b, ',')
	}
	e.first = false
	e.b = jsonw.AppendString(e.b, k)
	e.b = append(e.b, ':')
}

// str writes a string field unless s is empty (omitempty).
func (e *encoder) str(k, s string) {
	if s != "" {
		e.key(k)
		e.b = jsonw.AppendString(e.b, s)
	}
}

func (e *encoder) num(k string, n int) {
	if n != 0 {
		e.key(k)
		e.b = strconv.AppendInt(e.b, int64(n), 10)
	}
}

func (e *encoder) boolean(k string, v bool) {
	if v {
		e.key(k)
		e.b = append(e.b, "true"...)
	}
}

func (e *encoder) time(k string, t time.Time) {
	e.key(k)
	e.b = appendTime(e.b, t)
}

// appendTime appends t quoted as time.Time's MarshalJSON does
// (RFC 3339 with trailing zeros of the fraction cut) for UTC times with
// whole milliseconds, the only ones the generator makes; others take the
// standard path.
func appendTime(b []byte, t time.Time) []byte {
	ns := t.Nanosecond()
	if t.Location() != time.UTC || ns%int(time.Millisecond) != 0 || t.Year() < 1000 || t.Year() > 9999 {
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	}
	b = appendISO(append(b, '"'), t)
	if ms := ns / int(time.Millisecond); ms != 0 {
		d := [3]byte{byte('0' + ms/100), byte('0' + ms/10%10), byte('0' + ms%10)}
		n := 3
		for d[n-1] == '0' {
			n--
		}
		b = append(append(b, '.'), d[:n]...)
	}
	return append(b, 'Z', '"')
}

// appendISO appends t's "2006-01-02T15:04:05" in UTC.
func appendISO(b []byte, t time.Time) []byte {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	two := func(b []byte, n int) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }
	b = two(two(b, y/100), y%100)
	b = two(append(b, '-'), int(mo))
	b = two(append(b, '-'), d)
	b = two(append(b, 'T'), h)
	b = two(append(b, ':'), mi)
	return two(append(b, ':'), s)
}

// mapField writes a map field unless it is empty (omitempty).
func (e *encoder) mapField(k string, m map[string]any) {
	if len(m) > 0 {
		e.key(k)
		e.object(m)
	}
}

type kv struct {
	k string
	v any
}

// object writes m with sorted keys, as encoding/json does.
func (e *encoder) object(m map[string]any) {
	var buf [24]kv
	pairs := buf[:0]
	for k, v := range m {
		pairs = append(pairs, kv{k, v})
	}
	slices.SortFunc(pairs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	e.open()
	for _, p := range pairs {
		e.key(p.k)
		e.value(p.v)
	}
	e.close()
}

func (e *encoder) value(v any) {
	switch x := v.(type) {
	case nil:
		e.b = append(e.b, "null"...)
	case string:
		e.b = jsonw.AppendString(e.b, x)
	case bool:
		e.b = strconv.AppendBool(e.b, x)
	case int:
		e.b = strconv.AppendInt(e.b, int64(x), 10)
	case int64:
		e.b = strconv.AppendInt(e.b, x, 10)
	case float64:
		if a := math.Abs(x); a != 0 && (a < 1e-6 || a >= 1e21) || math.IsInf(x, 0) || math.IsNaN(x) {
			e.fallback(v)
			return
		}
		e.b = strconv.AppendFloat(e.b, x, 'f', -1, 64)
	case time.Time:
		e.b = appendTime(e.b, x)
	case json.RawMessage:
		e.b = append(e.b, x...)
	case map[string]any:
		e.object(x)
	case analytics.Properties:
		e.object(x)
	case analytics.Traits:
		e.object(x)
	case analytics.Integrations:
		e.object(x)
	case []any:
		e.b = append(e.b, '[')
		for i, y := range x {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.value(y)
		}
		e.b = append(e.b, ']')
	case []string:
		e.b = append(e.b, '[')
		for i, y := range x {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.b = jsonw.AppendString(e.b, y)
		}
		e.b = append(e.b, ']')
	default:
		e.fallback(v)
	}
	e.first = false
}

func (e *encoder) fallback(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("traffic: encoding %T: %v", v, err)) // unreachable: plain values
	}
	e.b = append(e.b, b...)
}

// ip writes ip as net.IP's MarshalText does, without allocating.
func (e *encoder) ip(k string, ip net.IP) {
	var a netip.Addr
	switch len(ip) {
	case 0:
		return
	case net.IPv4len:
		a = netip.AddrFrom4([4]byte(ip))
	case net.IPv6len:
		a = netip.AddrFrom16([16]byte(ip)).Unmap()
	default:
		e.key(k)
		e.fallback(ip)
		return
	}
	e.key(k)
	e.b = append(e.b, '"')
	e.b = a.AppendTo(e.b)
	e.b = append(e.b, '"')
}

// context writes analytics.Context as its MarshalJSON does: set fields,
// zero sub-structs left out, Extra keys inlined (fields win).
func (e *encoder) context(c *analytics.Context) {
	if c == nil {
		return
	}
	e.key("context")
	e.open()
	if c.App != (analytics.AppInfo{}) {
		e.key("app")
		e.open()
		e.str("name", c.App.Name)
		e.str("version", c.App.Version)
		e.str("build", c.App.Build)
		e.str("namespace", c.App.Namespace)
		e.close()
	}
	if c.Campaign != (analytics.CampaignInfo{}) {
		e.key("campaign")
		e.open()
		e.str("name", c.Campaign.Name)
		e.str("source", c.Campaign.Source)
		e.str("medium", c.Campaign.Medium)
		e.str("term", c.Campaign.Term)
		e.str("content", c.Campaign.Content)
		e.close()
	}
	if c.Device != (analytics.DeviceInfo{}) {
		d := c.Device
		e.key("device")
		e.open()
		e.str("id", d.Id)
		e.str("manufacturer", d.Manufacturer)
		e.str("model", d.Model)
		e.str("name", d.Name)
		e.str("type", d.Type)
		e.str("version", d.Version)
		e.str("advertisingId", d.AdvertisingID)
		e.close()
	}
	e.boolean("direct", c.Direct)
	e.str("groupId", c.GroupID)
	e.ip("ip", c.IP)
	if c.Library != (analytics.LibraryInfo{}) {
		e.key("library")
		e.open()
		e.str("name", c.Library.Name)
		e.str("version", c.Library.Version)
		e.close()
	}
	e.str("locale", c.Locale)
	if c.Location != (analytics.LocationInfo{}) {
		e.fallbackField("location", c.Location)
	}
	if c.Network != (analytics.NetworkInfo{}) {
		n := c.Network
		e.key("network")
		e.open()
		e.boolean("bluetooth", n.Bluetooth)
		e.boolean("cellular", n.Cellular)
		e.boolean("wifi", n.WIFI)
		e.str("carrier", n.Carrier)
		e.close()
	}
	if c.OS != (analytics.OSInfo{}) {
		e.key("os")
		e.open()
		e.str("name", c.OS.Name)
		e.str("version", c.OS.Version)
		e.close()
	}
	if c.Page != (analytics.PageInfo{}) {
		p := c.Page
		e.key("page")
		e.open()
		e.str("hash", p.Hash)
		e.str("path", p.Path)
		e.str("referrer", p.Referrer)
		e.str("search", p.Search)
		e.str("title", p.Title)
		e.str("url", p.URL)
		e.close()
	}
	if c.Referrer != (analytics.ReferrerInfo{}) {
		e.fallbackField("referrer", c.Referrer)
	}
	if c.Screen != (analytics.ScreenInfo{}) {
		e.key("screen")
		e.open()
		e.num("density", c.Screen.Density)
		e.num("width", c.Screen.Width)
		e.num("height", c.Screen.Height)
		e.close()
	}
	e.str("timezone", c.Timezone)
	e.mapField("traits", c.Traits)
	e.str("userAgent", c.UserAgent)
	for _, k := range sortedKeys(c.Extra) {
		if !contextFields[k] {
			e.key(k)
			e.value(c.Extra[k])
		}
	}
	e.close()
}

// contextFields are analytics.Context's JSON names, which win over Extra.
var contextFields = map[string]bool{
	"app": true, "campaign": true, "device": true, "library": true, "location": true, "network": true,
	"os": true, "page": true, "referrer": true, "screen": true, "ip": true, "direct": true, "locale": true,
	"groupId": true, "timezone": true, "userAgent": true, "traits": true,
}

func sortedKeys(m map[string]any) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (e *encoder) fallbackField(k string, v any) {
	e.key(k)
	e.fallback(v)
}

// appendMessage appends one analytics-go message (a value or a pointer to
// one) to dst. Other types go through encoding/json.
func appendMessage(dst []byte, msg any) []byte {
	e := encoder{b: dst}
	switch m := msg.(type) {
	case *analytics.Page:
		e.page(m)
	case analytics.Page:
		e.page(&m)
	case *analytics.Track:
		e.track(m)
	case analytics.Track:
		e.track(&m)
	case *analytics.Identify:
		e.identify(m)
	case analytics.Identify:
		e.identify(&m)
	case analytics.Screen:
		e.open()
		e.common(m.Type, m.MessageId, m.AnonymousId, m.UserId)
		e.str("name", m.Name)
		e.tail(m.Timestamp, m.Context, m.Integrations)
		e.mapField("properties", m.Properties)
		e.close()
	case analytics.Group:
		e.open()
		e.common(m.Type, m.MessageId, m.AnonymousId, m.UserId)
		e.key("groupId")
		e.b = jsonw.AppendString(e.b, m.GroupId)
		e.tail(m.Timestamp, m.Context, m.Integrations)
		e.mapField("traits", m.Traits)
		e.close()
	case analytics.Alias:
		e.open()
		e.str("type", m.Type)
		e.str("messageId", m.MessageId)
		e.key("previousId")
		e.b = jsonw.AppendString(e.b, m.PreviousId)
		e.key("userId")
		e.b = jsonw.AppendString(e.b, m.UserId)
		e.tail(m.Timestamp, m.Context, m.Integrations)
		e.close()
	default:
		return append(dst, marshal(msg)...)
	}
	return e.b
}

// encodeMessage returns msg as JSON.
func encodeMessage(msg any) []byte { return appendMessage(make([]byte, 0, 2048), msg) }

func (e *encoder) page(m *analytics.Page) {
	e.open()
	e.common(m.Type, m.MessageId, m.AnonymousId, m.UserId)
	e.str("name", m.Name)
	e.tail(m.Timestamp, m.Context, m.Integrations)
	e.mapField("properties", m.Properties)
	e.close()
}

func (e *encoder) track(m *analytics.Track) {
	e.open()
	e.common(m.Type, m.MessageId, m.AnonymousId, m.UserId)
	e.key("event") // no omitempty
	e.b = jsonw.AppendString(e.b, m.Event)
	e.tail(m.Timestamp, m.Context, m.Integrations)
	e.mapField("properties", m.Properties)
	e.close()
}

func (e *encoder) identify(m *analytics.Identify) {
	e.open()
	e.common(m.Type, m.MessageId, m.AnonymousId, m.UserId)
	e.tail(m.Timestamp, m.Context, m.Integrations)
	e.mapField("traits", m.Traits)
	e.close()
}

func (e *encoder) common(typ, id, anon, user string) {
	e.str("type", typ)
	e.str("messageId", id)
	e.str("anonymousId", anon)
	e.str("userId", user)
}

// tail writes timestamp (time.Time has no omitempty effect), context and
// integrations.
func (e *encoder) tail(ts time.Time, c *analytics.Context, i analytics.Integrations) {
	e.time("timestamp", ts)
	e.context(c)
	e.mapField("integrations", i)
}
