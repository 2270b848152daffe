package mapping_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/castle-destination/castle-destination/castleserver"
	"github.com/castle-destination/castle-destination/internal/rawjson"
	"github.com/castle-destination/castle-destination/mapping"
)

// castleBody maps raw (the last message's result) and decodes its body for
// ep.
func castleBody(t *testing.T, m *mapping.Mapper, raw string, ep mapping.Endpoint) (map[string]any, mapping.Result) {
	t.Helper()
	rs := m.Map(nil, []byte(raw), goldenNow, nil)
	r := rs[len(rs)-1]
	if r.Action != mapping.Forward {
		t.Fatalf("%v %s: %s", r.Action, r.Detail, raw)
	}
	var b map[string]any
	if err := json.Unmarshal(r.Event.AppendBody(nil, ep, true), &b); err != nil {
		t.Fatal(err)
	}
	return b, r
}

func member(b map[string]any, path ...string) any {
	var v any = b
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// Castle requires user.address.country_code, an ISO 3166 code: an address
// whose country is a name, or missing, stays in user.traits (counted), as
// Segment's own Castle integration leaves such an address out.
func TestAddressNeedsACountryCode(t *testing.T) {
	for _, c := range []struct {
		address string
		code    any // user.address.country_code; nil: no user.address
	}{
		{`{"street":"1 Main","city":"SF","country":"us"}`, "US"},
		{`{"street":"1 Main","city":"SF","state":"CA","country":"United States"}`, nil},
		{`{"city":"Paris"}`, nil},
		// Only ASCII letters are capitalised: "ſe" (a long s) is no code,
		// though strings.ToUpper makes "SE" of it.
		{`{"city":"Stockholm","country":"ſe"}`, nil},
	} {
		raw := `{"batch":[{"type":"identify","messageId":"i","userId":"u","channel":"client","traits":{"address":` + c.address + `},"context":{"library":{"name":"analytics.js"}}},` +
			`{"type":"track","messageId":"t","userId":"u","event":"E","channel":"client","context":{"library":{"name":"analytics.js"}}}]}`
		b, _ := castleBody(t, goldenMapper(), raw, mapping.Log)
		if got := member(b, "user", "address", "country_code"); got != c.code {
			t.Errorf("%s: user.address.country_code %v, want %v", c.address, got, c.code)
		}
		if c.code == nil {
			if member(b, "user", "traits", "address.city") == nil || member(b, "user", "address") != nil {
				t.Errorf("%s: the address did not stay in traits: %v", c.address, b["user"])
			}
		}
	}
}

// A security event's transaction and changeset go to their fields only in
// the shape Castle's schema takes; otherwise they stay in properties
// (counted as reserved_invalid), so that Castle does not refuse the event.
func TestReservedObjectsOnlyInCastlesShape(t *testing.T) {
	login := func(props string) string {
		return `{"type":"track","messageId":"l","userId":"u","event":"$profile_update.succeeded","channel":"client","timestamp":"2025-01-15T11:59:30Z",` +
			`"properties":` + props + `,"integrations":{"Castle":{"requestToken":"tok"}},"context":{"ip":"81.2.69.142","library":{"name":"analytics.js"}}}`
	}
	srv, err := castleserver.New(castleserver.Config{Secret: "s", RateLimitOff: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		props              string
		transaction, chset bool // sent as their own fields (changeset on risk)
		invalid            bool
	}{
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$fiat","value":"9.99","currency":"USD"}}}`, true, false, false},
		{`{"transaction":{"amount":5}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"purchase"}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$sale","amount":{"value":9.99}}}`, false, false, true},
		// An amount's value is optional (castle-java's generated Amount),
		// a string when it is there.
		{`{"transaction":{"id":"t1","type":"$deposit","amount":{"type":"$crypto","currency":"BTC"}}}`, true, false, false},
		{`{"transaction":{"id":"t1","type":"$deposit","amount":{"type":"$crypto","value":null}}}`, false, false, true},
		// currency is a string (castle-java's Amount): as for value, Castle
		// refuses null for a string (its 422 for a null request_token).
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$fiat","value":"1","currency":840}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$fiat","value":"1","currency":null}}}`, false, false, true},
		// An amount's currency is "required when value is provided"
		// (castle-java's Amount and FiatAmount).
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$fiat","value":"9.99"}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$crypto","value":"0.1"}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$crypto","currency":"BTC"}}}`, true, false, false},
		// A $fiat amount's currency is one of castle-java's FiatAmount
		// CurrencyEnum (sent in capitals: see TestFiatCurrencyInCapitals);
		// a $crypto amount's is any string (CryptoAmount).
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$fiat","value":"1","currency":"usd"}}}`, true, false, false},
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$fiat","value":"1","currency":"BTC"}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$fiat","value":"1","currency":"US$"}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"currency":"eur","type":"$fiat","currency":"GBX"}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$crypto","value":"0.1","currency":"btc"}}}`, true, false, false},
		// Only ASCII letters are capitalised: strings.ToUpper would make
		// "INR" of "ınr" (a dotless ı) and "SEK" of "ſek" (a long s),
		// codes the source did not write.
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$fiat","value":"1","currency":"ınr"}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$fiat","value":"1","currency":"ſek"}}}`, false, false, true},
		// A value given as a plain decimal number is sent as its text (see
		// TestAmountValueNumberSentAsText); one with an exponent is not.
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$fiat","value":9.99,"currency":"EUR"}}}`, true, false, false},
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$fiat","value":1e3}}}`, false, false, true},
		// base_amount is a string too (castle-java's Transaction), a plain
		// decimal number sent as its text, as an amount's value is.
		{`{"transaction":{"id":"t1","type":"$purchase","base_amount":"12.50"}}`, true, false, false},
		{`{"transaction":{"id":"t1","type":"$purchase","base_amount":12.5}}`, true, false, false},
		{`{"transaction":{"id":"t1","type":"$purchase","base_amount":1e3}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","base_amount":null}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","base_amount":{"value":"1"}}}`, false, false, true},
		// A payment_method, shipping_address and merchant in the shape
		// castle-java's generated PaymentMethod, PaymentMethodCard,
		// Address, Merchant and MerchantCategory give, or null; members
		// Castle does not name are its to ignore (castle-node's typings).
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"$card","holder_name":"A B","billing_address":{"country_code":"US"},` +
			`"card":{"bin":"424242","last4":"4242","exp_month":12,"exp_year":2030,"network":"$visa","funding":"$credit"}},` +
			`"shipping_address":{"line1":"60 Rausch Street","country_code":"US","postal_code":"94103"},` +
			`"merchant":{"id":"m1","name":"United Airlines","category":{"code":"3000","description":"Airlines"},"address":{"country_code":"FR"}}}}`, true, false, false},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":null,"shipping_address":null,"merchant":{"category":null,"address":null}}}`, true, false, false},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"$sepa","iban_last4":"1234","card":{"cvc_check":"pass"}},"merchant":{"mcc":3000}}}`, true, false, false},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":"card"}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"bank_name":"B"}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"card"}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"Type":"$card"}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"$card","holder_name":5}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"$card","country_code":null}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"$card","billing_address":{"city":"Paris"}}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"$card","card":"4242"}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"$card","card":{"last4":4242}}}}`, false, false, true},
		// exp_month and exp_year are integers (PaymentMethodCard).
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"$card","card":{"exp_month":"12"}}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"$card","card":{"exp_year":2030.0}}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"$card","card":{"exp_month":1e1}}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"$card","card":{"network":"visa"}}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"$card","card":{"funding":null}}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","payment_method":{"type":"$card"},"payment_method":5}}`, false, false, true},
		// An address needs an ISO 3166 country_code (Address); two letters
		// of either case are sent in capitals, as user.address is.
		{`{"transaction":{"id":"t1","type":"$purchase","shipping_address":{"line1":"1 Main St"}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","shipping_address":{"country_code":"United States"}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","shipping_address":{"country_code":"us","postal_code":94103}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","shipping_address":"1 Main St"}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","shipping_address":{"country_code":"us"}}}`, true, false, false},
		{`{"transaction":{"id":"t1","type":"$purchase","shipping_address":{"country_code":"ſe"}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","merchant":{"id":7}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","merchant":{"category":"airlines"}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","merchant":{"category":{"code":3000}}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","merchant":{"address":{"country_code":"U"}}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","merchant":[]}}`, false, false, true},
		{`{"changeset":{"email":{"from":"a@x","to":"b@x"},"password":{"changed":true}}}`, false, true, false},
		{`{"changeset":{"address":{"changed":true}}}`, false, false, true},
		{`{"changeset":{"email":{"to":"b@x"}}}`, false, false, true},
		// Castle reads keys as JSON decoders do: exactly, the last of a
		// repeated key winning.
		{`{"transaction":{"ID":"t1","type":"$purchase"}}`, false, false, true},
		{`{"transaction":{"id":"t1","Type":"$purchase"}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","id":5}}`, false, false, true},
		{`{"transaction":{"id":"t1","\u0069d":5,"type":"$purchase"}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"type":"$fiat","value":1,"value":true}}}`, false, false, true},
		{`{"transaction":{"id":"t1","type":"$purchase","amount":{"Type":"$fiat","value":"1"}}}`, false, false, true},
		{`{"transaction":{"id":5,"type":"$purchase","id":"t1"}}`, true, false, false},
		{`{"changeset":{"email":{"FROM":"a@x","TO":"b@x"}}}`, false, false, true},
		{`{"changeset":{"password":{"Changed":true}}}`, false, false, true},
		// from and to are nullable strings (castle-java's ChangesetEntry).
		{`{"changeset":{"phone":{"from":null,"to":"+41440000000"}}}`, false, true, false},
		{`{"changeset":{"email":{"from":"a@x","to":5}}}`, false, false, true},
		{`{"changeset":{"name":{"from":{"first":"A"},"to":"B"}}}`, false, false, true},
		// password is {"changed": true} only (castle-java's Changeset: a
		// ChangedChangesetEntry, no from or to).
		{`{"changeset":{"password":{"from":"old","to":"new"}}}`, false, false, true},
		{`{"changeset":{"p\u0061ssword":{"from":null,"to":"new"}}}`, false, false, true},
		// Castle's Changeset names authentication_method.type (castle-java's
		// generated Changeset and ChangesetEntry, whose example it is).
		{`{"changeset":{"authentication_method.type":{"from":null,"to":"$push"}}}`, false, true, false},
		{`{"changeset":{"authentication_method_type":{"from":null,"to":"$push"}}}`, false, false, true},
	} {
		b, r := castleBody(t, goldenMapper(), login(c.props), mapping.Risk)
		checkContract(t, srv, &r.Event)
		if got := b["transaction"] != nil; got != c.transaction {
			t.Errorf("%s: transaction sent %v, want %v", c.props, got, c.transaction)
		}
		if got := b["changeset"] != nil; got != c.chset {
			t.Errorf("%s: changeset sent %v, want %v", c.props, got, c.chset)
		}
		if got := r.Adjusted.Has(mapping.AdjustReservedInvalid); got != c.invalid {
			t.Errorf("%s: counted reserved_invalid %v, want %v", c.props, got, c.invalid)
		}
		if c.invalid && len(member(b, "properties").(map[string]any)) == 0 {
			t.Errorf("%s: the refused object is not in properties: %v", c.props, b["properties"])
		}
	}
}

// A transaction's addresses (shipping_address, its payment method's
// billing_address, its merchant's address) are sent with their
// country_code in capitals, as user.address is: Castle's Address takes an
// ISO 3166 code ("US"); Segment sources often write "us". The rest of
// the transaction's objects go as they came.
func TestTransactionAddressesInCapitals(t *testing.T) {
	srv, err := castleserver.New(castleserver.Config{Secret: "s", RateLimitOff: true})
	if err != nil {
		t.Fatal(err)
	}
	msg := `{"type":"track","messageId":"l","userId":"u","event":"$transaction.attempted","channel":"client","timestamp":"2025-01-15T11:59:30Z",` +
		`"properties":{"transaction":{"id":"t1","type":"$purchase",` +
		`"payment_method":{"type":"$card","billing_address":{"country_code":"fr","city":"Paris"},"card":{"last4":"4242","exp_month":12}},` +
		`"shipping_address":{"country_code":"us","postal_code":"94103"},` +
		`"merchant":{"name":"M","category":{"code":"5999"},"address":{"country_code":"De"}}}},` +
		`"integrations":{"Castle":{"requestToken":"tok"}},"context":{"ip":"81.2.69.142","library":{"name":"analytics.js"}}}`
	b, r := castleBody(t, goldenMapper(), msg, mapping.Risk)
	checkContract(t, srv, &r.Event)
	if r.Adjusted.Has(mapping.AdjustReservedInvalid) {
		t.Fatalf("transaction counted reserved_invalid: %v", b["properties"])
	}
	for _, c := range []struct {
		path []string
		want any
	}{
		{[]string{"transaction", "shipping_address", "country_code"}, "US"},
		{[]string{"transaction", "shipping_address", "postal_code"}, "94103"},
		{[]string{"transaction", "payment_method", "billing_address", "country_code"}, "FR"},
		{[]string{"transaction", "payment_method", "billing_address", "city"}, "Paris"},
		{[]string{"transaction", "payment_method", "card", "last4"}, "4242"},
		{[]string{"transaction", "payment_method", "card", "exp_month"}, 12.0},
		{[]string{"transaction", "merchant", "address", "country_code"}, "DE"},
		{[]string{"transaction", "merchant", "category", "code"}, "5999"},
	} {
		if got := member(b, c.path...); got != c.want {
			t.Errorf("%s = %v, want %v", strings.Join(c.path, "."), got, c.want)
		}
	}
}

// A $fiat amount's currency is sent in capitals ("usd" as "USD"): Castle's
// FiatAmount takes ISO 4217 codes as written in its enum, and Segment
// sources (Stripe's among them) often write them in lower case. A $crypto
// amount's currency is sent as it came.
func TestFiatCurrencyInCapitals(t *testing.T) {
	srv, err := castleserver.New(castleserver.Config{Secret: "s", RateLimitOff: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ amount, want string }{
		{`{"type":"$fiat","value":"9.99","currency":"usd"}`, "USD"},
		{`{"currency":"eUr","value":"9.99","type":"$fiat"}`, "EUR"},
		{`{"type":"$crypto","value":"0.1","currency":"btc"}`, "btc"},
	} {
		msg := `{"type":"track","messageId":"l","userId":"u","event":"$transaction.attempted","channel":"client","timestamp":"2025-01-15T11:59:30Z",` +
			`"properties":{"transaction":{"id":"t1","type":"$purchase","amount":` + c.amount + `}},` +
			`"integrations":{"Castle":{"requestToken":"tok"}},"context":{"ip":"81.2.69.142","library":{"name":"analytics.js"}}}`
		b, r := castleBody(t, goldenMapper(), msg, mapping.Risk)
		checkContract(t, srv, &r.Event)
		if got := member(b, "transaction", "amount", "currency"); got != c.want || r.Adjusted.Has(mapping.AdjustReservedInvalid) {
			t.Errorf("%s: currency sent as %v (reserved_invalid %v), want %q", c.amount, got, r.Adjusted.Has(mapping.AdjustReservedInvalid), c.want)
		}
	}
}

// A transaction's member Castle types as an object (amount,
// payment_method and its card and billing_address, shipping_address,
// merchant and its category and address) is left out when null, as Castle
// would refuse it, and the transaction still goes to its field. A key
// repeated with null last is left out in every copy: Castle reads the
// last, and would otherwise read an earlier one that was never checked.
func TestTransactionNullObjectsLeftOut(t *testing.T) {
	srv, err := castleserver.New(castleserver.Config{Secret: "s", RateLimitOff: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		transaction string
		want        string // the transaction sent, keys in order
	}{
		{`{"id":"t1","type":"$purchase","amount":null,"payment_method":null,"shipping_address":null,"merchant":null}`,
			`{"id":"t1","type":"$purchase"}`},
		{`{"id":"t1","type":"$purchase","payment_method":{"type":"$card","card":null,"billing_address":null},"merchant":{"category":null,"address":null,"id":"m1"}}`,
			`{"id":"t1","type":"$purchase","payment_method":{"type":"$card"},"merchant":{"id":"m1"}}`},
		{`{"amount":{"type":"$gift"},"id":"t1","type":"$purchase","amount":null}`,
			`{"id":"t1","type":"$purchase"}`},
		{`{"id":"t1","type":"$purchase","merch\u0061nt":{"name":7},"merchant":null}`,
			`{"id":"t1","type":"$purchase"}`},
		// A null that an object follows stays: Castle reads the object.
		{`{"id":"t1","type":"$purchase","merchant":null,"merchant":{"id":"m1"}}`,
			`{"id":"t1","type":"$purchase","merchant":null,"merchant":{"id":"m1"}}`},
	} {
		msg := `{"type":"track","messageId":"l","userId":"u","event":"$transaction.attempted","channel":"client","timestamp":"2025-01-15T11:59:30Z",` +
			`"properties":{"transaction":` + c.transaction + `},` +
			`"integrations":{"Castle":{"requestToken":"tok"}},"context":{"ip":"81.2.69.142","library":{"name":"analytics.js"}}}`
		_, r := castleBody(t, goldenMapper(), msg, mapping.Risk)
		checkContract(t, srv, &r.Event)
		got := string(rawjson.Member(r.Event.AppendBody(nil, mapping.Risk, true), []byte(`"transaction"`)))
		if got != c.want || r.Adjusted.Has(mapping.AdjustReservedInvalid) {
			t.Errorf("%s:\nsent   %s (reserved_invalid %v)\nwant   %s", c.transaction, got, r.Adjusted.Has(mapping.AdjustReservedInvalid), c.want)
		}
	}
}

// A transaction whose object keys are repeated, null last or not, is
// sent with every null copy left out and every other copy kept.
// BenchmarkMapRepeatedKeys shows that this costs one pass over the
// transaction however often a key is repeated.
func TestTransactionRepeatedKeys(t *testing.T) {
	const n = 500
	_, r := castleBody(t, goldenMapper(), repeatedKeysTrack(n), mapping.Risk)
	got := rawjson.Member(r.Event.AppendBody(nil, mapping.Risk, true), []byte(`"transaction"`))
	if want := `{"id":"t1","type":"$sale",` + strings.Repeat(`"payment_method":{"type":"$card"},`, n-1) + `"payment_method":{"type":"$card"}}`; string(got) != want {
		t.Errorf("sent %.200s..., want %.200s...", got, want)
	}
}

// repeatedKeysTrack is a track whose transaction repeats merchant (null
// last) and payment_method (its card null last) n times.
func repeatedKeysTrack(n int) string {
	tx := `{"id":"t1","type":"$sale",` + strings.Repeat(`"merchant":{},"payment_method":{"type":"$card","card":{},"card":null},`, n) + `"merchant":null}`
	return `{"type":"track","messageId":"l","userId":"u","event":"$transaction.attempted","channel":"client","timestamp":"2025-01-15T11:59:30Z",` +
		`"properties":{"transaction":` + tx + `},` +
		`"integrations":{"Castle":{"requestToken":"tok"}},"context":{"ip":"81.2.69.142","library":{"name":"analytics.js"}}}`
}

// Castle's Amount takes the value as a string ("100.00"), and its
// Transaction the base_amount; a Segment track often carries them as
// numbers, which are sent as the decimal text they were written as. A
// number with an exponent is no decimal text: the transaction stays in
// properties.
func TestAmountValueNumberSentAsText(t *testing.T) {
	srv, err := castleserver.New(castleserver.Config{Secret: "s", RateLimitOff: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ value, want string }{
		{`9.99`, "9.99"},
		{`100`, "100"},
		{`-0.5`, "-0.5"},
		{`12345678901234567890.123456789`, "12345678901234567890.123456789"},
		{`"42.00"`, "42.00"},
		{`1.5E2`, ""},
		{strings.Repeat("9", mapping.MaxStringLength+1), ""},
		{`1e999`, ""},
	} {
		msg := `{"type":"track","messageId":"l","userId":"u","event":"$transaction.attempted","channel":"client","timestamp":"2025-01-15T11:59:30Z",` +
			`"properties":{"transaction":{"id":"t1","type":"$purchase","base_amount":` + c.value + `,"amount":{"type":"$fiat","value":` + c.value + `,"currency":"USD"}}},` +
			`"integrations":{"Castle":{"requestToken":"tok"}},"context":{"ip":"81.2.69.142","library":{"name":"analytics.js"}}}`
		b, r := castleBody(t, goldenMapper(), msg, mapping.Risk)
		checkContract(t, srv, &r.Event)
		tx, _ := b["transaction"].(map[string]any)
		if c.want == "" {
			if tx != nil || !r.Adjusted.Has(mapping.AdjustReservedInvalid) {
				t.Errorf("value %s: transaction sent as %v (reserved_invalid %v), want it left in properties", c.value, tx, r.Adjusted.Has(mapping.AdjustReservedInvalid))
			}
			continue
		}
		amount, _ := tx["amount"].(map[string]any)
		if got, ok := amount["value"].(string); !ok || got != c.want || amount["currency"] != "USD" || r.Adjusted.Has(mapping.AdjustReservedInvalid) {
			t.Errorf("value %s: amount sent as %v (reserved_invalid %v), want value %q", c.value, amount, r.Adjusted.Has(mapping.AdjustReservedInvalid), c.want)
		}
		if got, ok := tx["base_amount"].(string); !ok || got != c.want {
			t.Errorf("base_amount %s: sent as %v, want %q", c.value, tx["base_amount"], c.want)
		}
	}
}

// A number a float64 cannot hold is sent as a string, and like any string
// cut to MaxStringLength characters: Castle refuses a longer property.
func TestNumberNotFiniteCutAsString(t *testing.T) {
	srv, err := castleserver.New(castleserver.Config{Secret: "s", RateLimitOff: true})
	if err != nil {
		t.Fatal(err)
	}
	long := "5" + strings.Repeat("8", 1500)
	msg := `{"type":"track","messageId":"n","userId":"u","event":"Big","channel":"client","timestamp":"2025-01-15T11:59:30Z",` +
		`"properties":{"big":` + long + `,"short":1e999,"nested":{"n":` + long + `}},"context":{"library":{"name":"analytics.js"}}}`
	b, r := castleBody(t, goldenMapper(), msg, mapping.Log)
	checkContract(t, srv, &r.Event)
	props := member(b, "properties").(map[string]any)
	for k, want := range map[string]string{"big": long[:mapping.MaxStringLength], "short": "1e999", "nested.n": long[:mapping.MaxStringLength]} {
		if got, _ := props[k].(string); got != want {
			t.Errorf("property %s = %.40v… (%d characters), want the number's first %d characters", k, props[k], len(got), len(want))
		}
	}
	if !r.Adjusted.Has(mapping.AdjustNumberNotFinite) || !r.Adjusted.Has(mapping.AdjustValueTruncated) {
		t.Errorf("adjusted %v, want number_not_finite and value_truncated", r.Adjusted)
	}
}

// A userJwt's address claim follows the same rule as traits.address:
// "us" is sent as US; "ſe" (a long s) is no code and stays in traits.
func TestAddressClaimNeedsACountryCode(t *testing.T) {
	for _, c := range []struct {
		country string
		code    any // user.address.country_code; nil: no user.address
	}{{"us", "US"}, {"ſe", nil}} {
		tok := sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"id": "j1", "exp": goldenNow.Add(time.Hour).Unix(),
			"address": map[string]any{"city": "C", "country_code": c.country}}, []byte(goldenSecret))
		b, _ := castleBody(t, goldenMapper(), `{"type":"track","messageId":"t","userId":"j1","event":"E","channel":"client",`+
			`"integrations":{"Castle":{"userJwt":"`+tok+`"}},"context":{"library":{"name":"analytics.js"}}}`, mapping.Log)
		if got := member(b, "user", "address", "country_code"); got != c.code {
			t.Errorf("%q: user.address.country_code %v, want %v (user %v)", c.country, got, c.code, b["user"])
		}
	}
}

// A traits claim in a userJwt is the user's traits, merged, not a nested
// object flattened under "traits.".
func TestTraitsClaimMerges(t *testing.T) {
	tok := sign(t, jwt.SigningMethodHS256, jwt.MapClaims{"id": "j1", "exp": goldenNow.Add(time.Hour).Unix(),
		"traits": map[string]any{"plan": "pro", "seats": 3}}, []byte(goldenSecret))
	b, _ := castleBody(t, goldenMapper(), `{"type":"track","messageId":"t","userId":"j1","event":"E","channel":"client",`+
		`"integrations":{"Castle":{"userJwt":"`+tok+`"}},"context":{"library":{"name":"analytics.js"}}}`, mapping.Log)
	if member(b, "user", "traits", "plan") != "pro" || member(b, "user", "traits", "seats") != 3.0 || member(b, "user", "traits", "traits.plan") != nil {
		t.Errorf("user.traits %v, want plan and seats merged", member(b, "user", "traits"))
	}
}

// Castle's user needs an id: an anonymous event's context.traits are not
// sent as a user without one (as in Segment's own Castle integration).
func TestAnonymousEventSendsNoUser(t *testing.T) {
	b, _ := castleBody(t, goldenMapper(), `{"type":"track","messageId":"a","anonymousId":"an1","event":"E","channel":"client",`+
		`"context":{"traits":{"email":"anon@example.com"},"library":{"name":"analytics.js"}}}`, mapping.Log)
	if u, ok := b["user"]; ok {
		t.Errorf("user %v sent without an id", u)
	}
}
