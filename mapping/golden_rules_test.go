package mapping_test

import "maps"

// Golden cases of the filtering and mapping rules: public IPs, headers,
// mobile libraries, truthy integrations, registered_at, caps and numbers.
var ruleCases = map[string]string{
	// Public IP: IANA's special-purpose blocks are not public.
	"ip-carrier-grade-nat":  `{"type":"page","messageId":"ip-1","userId":"u","channel":"client","context":{"ip":"100.64.12.7","userAgent":"UA","library":{"name":"analytics.js"}}}`,
	"ip-benchmarking":       `{"type":"page","messageId":"ip-2","userId":"u","channel":"client","context":{"ip":"198.18.0.5","library":{"name":"analytics.js"}}}`,
	"ip-ietf-assignments":   `{"type":"page","messageId":"ip-3","userId":"u","channel":"client","context":{"ip":"192.0.0.1","library":{"name":"analytics.js"}}}`,
	"ip-reserved-240":       `{"type":"page","messageId":"ip-4","userId":"u","channel":"client","context":{"ip":"240.1.2.3","library":{"name":"analytics.js"}}}`,
	"ip-documentation-v6":   `{"type":"page","messageId":"ip-5","userId":"u","channel":"client","context":{"ip":"2001:db8::7","library":{"name":"analytics.js"}}}`,
	"ip-unique-local-v6":    `{"type":"page","messageId":"ip-6","userId":"u","channel":"client","context":{"ip":"fd00:abcd::1","library":{"name":"analytics.js"}}}`,
	"ip-link-local-zone-v6": `{"type":"page","messageId":"ip-7","userId":"u","channel":"client","context":{"ip":"fe80::1%eth0","library":{"name":"analytics.js"}}}`,
	"ip-mapped-v4-public":   `{"type":"page","messageId":"ip-8","userId":"u","channel":"client","context":{"ip":"::ffff:81.2.69.142","locale":"de-CH","library":{"name":"analytics.js"}}}`,
	"ip-mapped-v4-private":  `{"type":"page","messageId":"ip-9","userId":"u","channel":"client","context":{"ip":"::ffff:10.1.2.3","library":{"name":"analytics.js"}}}`,
	"ip-not-an-ip":          `{"type":"page","messageId":"ip-10","userId":"u","channel":"client","context":{"ip":"unknown","library":{"name":"analytics.js"}}}`,
	// Headers are an object whenever context is sent, {} when none is known.
	"headers-empty-object": `{"type":"track","messageId":"hd-1","userId":"u","event":"No Headers","channel":"client","context":{"ip":"81.2.69.142","library":{"name":"analytics.js"}}}`,
	// Mobile libraries without channel are mobile.
	"mobile-library-no-channel":       `{"type":"track","messageId":"mob-2","userId":"u","event":"Tap","context":{"library":{"name":"analytics-ios","version":"4.1.8"}}}`,
	"mobile-library-react-native":     `{"type":"page","messageId":"mob-3","userId":"u","context":{"library":{"name":"analytics-react-native"}}}`,
	"acceptmobile-library-no-channel": `{"type":"track","messageId":"mob-4","userId":"u","event":"Tap","context":{"ip":"81.2.69.142","library":{"name":"analytics-kotlin"}}}`,
	"acceptmobile-channel-mobile":     `{"type":"track","messageId":"mob-5","userId":"u","event":"Tap","channel":"mobile","context":{"library":{"name":"analytics-swift"}}}`,
	// Truthy is JavaScript's rule.
	"enabled-all-false-castle-string":        `{"type":"track","messageId":"tr-1","userId":"u","event":"E","channel":"client","integrations":{"All":false,"Castle":"false"},"context":{"library":{"name":"analytics.js"}}}`,
	"enabled-all-false-castle-number":        `{"type":"track","messageId":"tr-2","userId":"u","event":"E","channel":"client","integrations":{"all":false,"Castle":1},"context":{"library":{"name":"analytics.js"}}}`,
	"enabled-all-false-castle-array":         `{"type":"track","messageId":"tr-3","userId":"u","event":"E","channel":"client","integrations":{"All":false,"castle":[]},"context":{"library":{"name":"analytics.js"}}}`,
	"disabled-all-false-castle-zero":         `{"type":"track","messageId":"tr-4","userId":"u","event":"E","channel":"client","integrations":{"All":false,"Castle":0.0},"context":{"library":{"name":"analytics.js"}}}`,
	"disabled-all-false-castle-empty-string": `{"type":"track","messageId":"tr-5","userId":"u","event":"E","channel":"client","integrations":{"All":false,"Castle":""},"context":{"library":{"name":"analytics.js"}}}`,
	"disabled-all-false-castle-null":         `{"type":"track","messageId":"tr-6","userId":"u","event":"E","channel":"client","integrations":{"All":false,"Castle":null},"context":{"library":{"name":"analytics.js"}}}`,
	"enabled-castle-zero-all-unset":          `{"type":"track","messageId":"tr-7","userId":"u","event":"E","channel":"client","integrations":{"Castle":0},"context":{"library":{"name":"analytics.js"}}}`,
	// registeredAt / createdAt: ISO, epoch seconds or milliseconds, number
	// or numeric string; no time stays in traits.
	"seq-registered-at-epoch-seconds": `{"type":"identify","messageId":"ra-1","userId":"u-ra1","channel":"client","traits":{"registeredAt":1648215849,"plan":"pro"},"context":{"library":{"name":"analytics.js"}}}
{"type":"track","messageId":"ra-2","userId":"u-ra1","event":"After","channel":"client","context":{"library":{"name":"analytics.js"}}}`,
	"seq-registered-at-millis-string": `{"type":"identify","messageId":"ra-3","userId":"u-ra3","channel":"client","traits":{"createdAt":"1648215849123"},"context":{"library":{"name":"analytics.js"}}}
{"type":"track","messageId":"ra-4","userId":"u-ra3","event":"After","channel":"client","context":{"library":{"name":"analytics.js"}}}`,
	"seq-registered-at-invalid": `{"type":"identify","messageId":"ra-5","userId":"u-ra5","channel":"client","traits":{"registeredAt":"yesterday","createdAt":"2024-03-01T10:00:00Z"},"context":{"library":{"name":"analytics.js"}}}
{"type":"track","messageId":"ra-6","userId":"u-ra5","event":"After","channel":"client","context":{"library":{"name":"analytics.js"}}}`,
	"seq-registered-at-wins": `{"type":"identify","messageId":"ra-7","userId":"u-ra7","channel":"client","traits":{"registeredAt":"2023-05-01T00:00:00Z","createdAt":1648215849},"context":{"library":{"name":"analytics.js"}}}
{"type":"track","messageId":"ra-8","userId":"u-ra7","event":"After","channel":"client","context":{"library":{"name":"analytics.js"}}}`,
	"track-context-traits-no-time":    `{"type":"track","messageId":"ra-9","userId":"u","event":"E","channel":"client","context":{"traits":{"createdAt":{"at":"soon"},"registeredAt":true},"library":{"name":"analytics.js"}}}`,
	"track-context-traits-odd-fields": `{"type":"track","messageId":"tf-1","userId":"u","event":"E","channel":"client","context":{"traits":{"email":{"work":"w@example.com"},"address":"Main St 1","name":"N","id":"dup-of-user-id"},"library":{"name":"analytics.js"}}}`,
	// Times are bounded to the years 1970-9999 in UTC, whatever the zone
	// sent or the clock-skew correction: past 9999 is no RFC 3339 time,
	// and Castle refuses it.
	"track-time-zone-past-9999": `{"type":"track","messageId":"tz-1","userId":"u","event":"E","channel":"client","timestamp":"9999-12-31T23:59:59-14:00","context":{"ip":"81.2.69.142","library":{"name":"analytics.js"}}}`,
	"track-time-skew-past-9999": `{"type":"track","messageId":"tz-2","userId":"u","event":"E","channel":"client","originalTimestamp":"9999-12-31T00:00:00Z","sentAt":"9999-01-01T00:00:00Z","receivedAt":"9999-12-31T00:00:00Z","context":{"ip":"81.2.69.142","library":{"name":"analytics.js"}}}`,
	"seq-registered-at-zone-past-9999": `{"type":"identify","messageId":"tz-3","userId":"u-tz3","channel":"client","traits":{"createdAt":"9999-12-31T23:59:59-14:00"},"context":{"library":{"name":"analytics.js"}}}
{"type":"track","messageId":"tz-4","userId":"u-tz3","event":"After","channel":"client","context":{"library":{"name":"analytics.js"}}}`,
	"track-number-not-finite":          `{"type":"track","messageId":"nf-1","userId":"u","event":"Big","channel":"client","properties":{"big":1e999,"neg":-1E+400,"fine":1.5e3,"tiny":1e-999,"nested":{"n":2e308},"list":[1e999]},"context":{"library":{"name":"analytics.js"}}}`,
	"track-properties-capped-counted":  `{"type":"track","messageId":"cap-1","userId":"u","event":"Capped","channel":"client","properties":{` + hugeProps(256) + `,"nulls":null,"z":{"deep":1}},"context":{"library":{"name":"analytics.js"}}}`,
	"track-properties-at-cap-no-count": `{"type":"track","messageId":"cap-2","userId":"u","event":"At Cap","channel":"client","properties":{` + hugeProps(256) + `,"nulls":null,"empty":{}},"context":{"library":{"name":"analytics.js"}}}`,
}

func init() { maps.Copy(cases, ruleCases) }
