package mapping_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/mapping"
)

// FuzzTransactionKept is FuzzCastleContract's other half for a security
// event's transaction: one the Castle-compatible server takes as written
// goes to Castle's transaction field, not to properties (counted
// reserved_invalid), so that the mapping is no stricter than the
// contract. Two shapes are left out, as the mapping's own choices: an
// empty id, and a number a float64 cannot hold (appendClean sends it as
// a string).
func FuzzTransactionKept(f *testing.F) {
	long := strings.Repeat("é", 1100)
	for _, tx := range []string{
		`{"id":"t1","type":"$purchase","amount":{"type":"$fiat","value":"9.99","currency":"USD"},"base_amount":"9.99"}`,
		`{"id":"t1","type":"$purchase","amount":{"type":"$fiat","currency":"usd"},"amount":{"type":"$crypto","value":"1","currency":"usd"}}`,
		`{"id":"t1","type":"$purchase","amount":{"type":"$fiat","value":"1","currency":"usd","type":"$crypto"}}`,
		`{"id":"t1","type":"$sale","payment_method":{"type":"$card","holder_name":"A","billing_address":{"country_code":"US","city":"SF"},` +
			`"card":{"bin":"424242","last4":"4242","exp_month":12,"exp_year":2030,"network":"$visa","funding":"$credit"}}}`,
		`{"id":"t1","type":"$sale","payment_method":{"type":"card","\u0074ype":"$card","card":{"exp_month": -0 ,"x":{"a":{"b":{"c":{"d":1}}}}}}}`,
		`{"id":"t1","type":"$sale","payment_method":{"type":"$sepa","card":null,"billing_address":null},"shipping_address":null,"merchant":null}`,
		`{"id":"t1","type":"$sale","shipping_address":{"country_code":"FR","line1":"` + long + `"},"merchant":{"id":"m","category":{"code":"5999","description":null}}}`,
		`{"id":"t1","type":"$sale","merchant":{"category":null,"address":{"country_code":"DE"},"mcc":3000}}`,
	} {
		f.Add(tx)
	}
	srv, err := castleserver.New(castleserver.Config{Secret: "fuzz", RateLimitOff: true})
	if err != nil {
		f.Fatal(err)
	}
	msg := func(tx string) []byte {
		return []byte(`{"type":"track","messageId":"l","userId":"u","event":"$transaction.attempted","channel":"client","timestamp":"2025-01-15T11:59:30Z",` +
			`"properties":{"transaction":` + tx + `},"integrations":{"Castle":{"requestToken":"tok"}},"context":{"ip":"81.2.69.142","library":{"name":"analytics.js"}}}`)
	}
	// The body the mapping sends for a placeholder transaction, in which
	// the fuzzed one replaces it as written.
	const mark = `{"id":"MARK","type":"$purchase"}`
	rs := goldenMapper().Map(nil, msg(mark), goldenNow, nil)
	tmpl := rs[len(rs)-1].Event.AppendBody(nil, mapping.Risk, true)
	if !bytes.Contains(tmpl, []byte(`"transaction":`+mark)) {
		f.Fatalf("the placeholder transaction is not in the body: %s", tmpl)
	}
	hugeNumber := regexp.MustCompile(`[0-9]{300}|[eE][+-]?[0-9]{3}`)
	f.Fuzz(func(t *testing.T, tx string) {
		var v map[string]any
		if tx == "" || tx[0] != '{' || json.Unmarshal([]byte(tx), &v) != nil || v["id"] == "" || hugeNumber.MatchString(tx) {
			return
		}
		if srv.Validate(castleserver.RiskPath, bytes.Replace(tmpl, []byte(mark), []byte(tx), 1)) != nil {
			return
		}
		rs := goldenMapper().Map(nil, msg(tx), goldenNow, nil)
		r := rs[len(rs)-1]
		if r.Action != mapping.Forward {
			t.Fatalf("%v %s", r.Action, r.Detail)
		}
		body := r.Event.AppendBody(nil, mapping.Risk, true)
		if r.Adjusted.Has(mapping.AdjustReservedInvalid) || !bytes.Contains(body, []byte(`"transaction":`)) {
			t.Fatalf("castleserver takes the transaction %s, the mapping left it in properties:\n%s", tx, body)
		}
	})
}
