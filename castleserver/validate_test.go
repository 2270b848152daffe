package castleserver_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/castle-destination/castle-destination/castleserver"
)

// vcase is one body and the answer it must get.
type vcase struct {
	name string
	body string
	code int
	typ  string // Castle error type, "" for success
	msg  string // a part of the error message (the JSON pointer)
}

func runCases(t *testing.T, path string, cases []vcase) {
	t.Helper()
	c := newClock()
	s := newServer(t, castleserver.Config{Now: c.Now, RateLimitOff: true})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := post(t, s, path, tc.body)
			if a.code != tc.code {
				t.Fatalf("status %d (%s), want %d", a.code, a.body, tc.code)
			}
			if tc.typ != "" && a.errType() != tc.typ {
				t.Errorf("error type %q (%s), want %q", a.errType(), a.body, tc.typ)
			}
			if !strings.Contains(a.errMessage(), tc.msg) {
				t.Errorf("message %q does not contain %q", a.errMessage(), tc.msg)
			}
			// Validate judges the body as the handler does; it does not
			// check request tokens.
			err := s.Validate(path, []byte(tc.body))
			if refused := tc.code >= 300 && tc.typ != "invalid_request_token"; (err != nil) != refused {
				t.Errorf("Validate: %v, want refused %v", err, refused)
			} else if err != nil && !strings.Contains(err.Error(), a.errMessage()) {
				t.Errorf("Validate: %q, the handler said %q", err, a.errMessage())
			}
		})
	}
}

// null is JSON null in ev's set (a nil value removes the field).
var null = json.RawMessage("null")

func TestValidateRisk(t *testing.T) {
	tok := castleserver.NewRequestToken(t0, "laptop")
	b := riskBody(tok)
	const bad = http.StatusUnprocessableEntity
	runCases(t, castleserver.RiskPath, []vcase{
		{name: "valid", body: ev(b, nil), code: http.StatusCreated},
		{name: "valid challenge requested", body: ev(b, map[string]any{"type": "$challenge", "status": "$requested"}), code: http.StatusCreated},
		{name: "valid with changeset and transaction", body: ev(b, map[string]any{
			"type":      "$profile_update",
			"changeset": map[string]any{"email": map[string]any{"from": "a@x.io", "to": "b@x.io"}},
			"transaction": map[string]any{"id": "t1", "type": "$purchase",
				"amount": map[string]any{"type": "$fiat", "value": "9.99", "currency": "EUR"}},
		}), code: http.StatusCreated},
		{name: "unknown top-level field accepted", body: ev(b, map[string]any{"sent_at": "2026-11-30T10:00:00Z", "zz": 1}), code: http.StatusCreated},
		{name: "headers as pairs", body: ev(b, map[string]any{"context": map[string]any{"ip": "81.2.69.142", "headers": [][]string{{"User-Agent", "x"}}}}), code: http.StatusCreated},

		{name: "no status", body: ev(b, map[string]any{"status": nil}), code: bad, typ: "invalid_parameters", msg: "missing required properties: status"},
		{name: "no token, no context", body: ev(b, map[string]any{"request_token": nil, "context": nil}), code: bad, typ: "invalid_parameters", msg: "missing required properties: request_token, context"},
		{name: "no user", body: ev(b, map[string]any{"user": nil}), code: bad, typ: "invalid_parameters", msg: "missing required properties: user"},
		{name: "user without id", body: ev(b, map[string]any{"user": map[string]any{"email": "a@b.io"}}), code: bad, typ: "invalid_parameters", msg: "'/user' is missing required properties: id"},
		{name: "user id not a string", body: ev(b, map[string]any{"user": map[string]any{"id": 7}}), code: bad, typ: "invalid_parameters", msg: "'/user/id' is not of type: string"},
		{name: "token null", body: ev(b, map[string]any{"request_token": null}), code: bad, typ: "invalid_parameters", msg: "'/request_token' is not of type: string"},
		{name: "token number", body: ev(b, map[string]any{"request_token": 12}), code: bad, typ: "invalid_parameters", msg: "'/request_token' is not of type: string"},
		{name: "type not for risk", body: ev(b, map[string]any{"type": "$password_reset_request"}), code: bad, typ: "invalid_parameters", msg: "'/type' is not one of"},
		{name: "$page not for risk", body: ev(b, map[string]any{"type": "$page"}), code: bad, typ: "invalid_parameters", msg: "'/type'"},
		{name: "bad status", body: ev(b, map[string]any{"status": "$done"}), code: bad, typ: "invalid_parameters", msg: "'/status' is not one of"},
		{name: "requested on login", body: ev(b, map[string]any{"status": "$requested"}), code: bad, typ: "invalid_parameters", msg: "$requested only when type is $challenge"},
		{name: "context without headers", body: ev(b, map[string]any{"context": map[string]any{"ip": "81.2.69.142"}}), code: bad, typ: "invalid_parameters", msg: "'/context' is missing required properties: headers"},
		{name: "context without ip", body: ev(b, map[string]any{"context": map[string]any{"headers": headers}}), code: bad, typ: "invalid_parameters", msg: "'/context' is missing required properties: ip"},
		{name: "private ip", body: ev(b, map[string]any{"context": map[string]any{"ip": "10.1.2.3", "headers": headers}}), code: bad, typ: "invalid_parameters", msg: "'/context/ip' must be a valid, public IP"},
		{name: "header value a number", body: ev(b, map[string]any{"context": map[string]any{"ip": "81.2.69.142", "headers": map[string]any{"X-N": 1}}}), code: bad, typ: "invalid_parameters", msg: "'/context/headers/X-N'"},
		{name: "params only on filter", body: ev(b, map[string]any{"params": map[string]any{"email": "a@b.io"}}), code: bad, typ: "invalid_parameters", msg: "'/params' is not accepted by /v1/risk (only by /v1/filter)"},
		{name: "matching_user_id only on filter", body: ev(b, map[string]any{"matching_user_id": "u2"}), code: bad, typ: "invalid_parameters", msg: "'/matching_user_id' is not accepted by /v1/risk"},
		{name: "changeset not an object", body: ev(b, map[string]any{"changeset": []int{1}}), code: bad, typ: "invalid_parameters", msg: "'/changeset' is not of type: object"},
		{name: "changeset entry not an object", body: ev(b, map[string]any{"changeset": map[string]any{"email": true}}), code: bad, typ: "invalid_parameters", msg: "'/changeset/email' is not of type: object"},
		{name: "transaction without id", body: ev(b, map[string]any{"transaction": map[string]any{"type": "$purchase"}}), code: bad, typ: "invalid_parameters", msg: "'/transaction' is missing required properties: id"},
		{name: "transaction bad type", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$gift"}}), code: bad, typ: "invalid_parameters", msg: "'/transaction/type' is not one of"},
		{name: "changeset field Castle does not know", body: ev(b, map[string]any{"changeset": map[string]any{"address": map[string]any{"changed": true}}}), code: bad, typ: "invalid_parameters", msg: "'/changeset/address' is not allowed"},
		// Castle's own example (castle-java's generated ChangesetEntry);
		// Changeset names the field authentication_method.type.
		{name: "changeset authentication_method.type", body: ev(b, map[string]any{"changeset": map[string]any{"authentication_method.type": map[string]any{"from": nil, "to": "$push"}}}), code: http.StatusCreated},
		{name: "changeset authentication_method_type", body: ev(b, map[string]any{"changeset": map[string]any{"authentication_method_type": map[string]any{"from": nil, "to": "$push"}}}), code: bad, typ: "invalid_parameters", msg: "'/changeset/authentication_method_type' is not allowed"},
		{name: "changeset password with from and to", body: ev(b, map[string]any{"changeset": map[string]any{"password": map[string]any{"from": "old", "to": "new"}}}), code: bad, typ: "invalid_parameters", msg: "'/changeset/password' is not {changed: true}"},
		{name: "changeset email changed", body: ev(b, map[string]any{"changeset": map[string]any{"email": map[string]any{"changed": true}}}), code: http.StatusCreated},
		{name: "changeset entry with to only", body: ev(b, map[string]any{"changeset": map[string]any{"email": map[string]any{"to": "b@x.io"}}}), code: bad, typ: "invalid_parameters", msg: "missing required properties: from, to"},
		{name: "changeset entry from null", body: ev(b, map[string]any{"changeset": map[string]any{"phone": map[string]any{"from": nil, "to": "+41440000000"}}}), code: http.StatusCreated},
		{name: "changeset entry to not a string", body: ev(b, map[string]any{"changeset": map[string]any{"email": map[string]any{"from": "a@x.io", "to": 5}}}), code: bad, typ: "invalid_parameters", msg: "'/changeset/email/to' is not of type: string, null"},
		{name: "changeset entry changed false", body: ev(b, map[string]any{"changeset": map[string]any{"password": map[string]any{"changed": false}}}), code: bad, typ: "invalid_parameters", msg: "neither {from, to} nor {changed: true}"},
		{name: "transaction amount without type", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$sale", "amount": map[string]any{"value": "1"}}}), code: bad, typ: "invalid_parameters", msg: "'/transaction/amount' is missing required properties: type"},
		{name: "transaction amount type unknown", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$sale", "amount": map[string]any{"type": "$cash", "value": "1", "currency": "USD"}}}), code: bad, typ: "invalid_parameters", msg: "'/transaction/amount/type' is not one of: $fiat, $crypto"},
		{name: "transaction amount without value", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$deposit", "amount": map[string]any{"type": "$crypto", "currency": "BTC"}}}), code: http.StatusCreated},
		{name: "transaction amount value a number", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$sale", "amount": map[string]any{"type": "$fiat", "value": 1}}}), code: bad, typ: "invalid_parameters", msg: "'/transaction/amount/value' is not of type: string"},
		{name: "transaction amount currency a number", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$sale", "amount": map[string]any{"type": "$fiat", "value": "1", "currency": 840}}}), code: bad, typ: "invalid_parameters", msg: "'/transaction/amount/currency' is not of type: string"},
		// castle-java's Amount: currency "required when value is provided".
		{name: "transaction amount value without currency", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$sale", "amount": map[string]any{"type": "$fiat", "value": "1"}}}), code: bad, typ: "invalid_parameters", msg: "'/transaction/amount' is missing required properties: currency"},
		{name: "transaction crypto amount value without currency", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$sale", "amount": map[string]any{"type": "$crypto", "value": "0.1"}}}), code: bad, typ: "invalid_parameters", msg: "'/transaction/amount' is missing required properties: currency"},
		{name: "transaction amount currency null", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$sale", "amount": map[string]any{"type": "$fiat", "value": "1", "currency": nil}}}), code: bad, typ: "invalid_parameters", msg: "'/transaction/amount/currency' is not of type: string"},
		// A $fiat amount's currency is one of FiatAmount's CurrencyEnum; a
		// $crypto amount's any string (castle-java's generated models).
		{name: "transaction fiat currency in lower case", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$sale", "amount": map[string]any{"type": "$fiat", "value": "1", "currency": "usd"}}}), code: bad, typ: "invalid_parameters", msg: "'/transaction/amount/currency' is not one of the currencies of a $fiat amount"},
		{name: "transaction fiat currency not listed", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$sale", "amount": map[string]any{"type": "$fiat", "value": "1", "currency": "BTC"}}}), code: bad, typ: "invalid_parameters", msg: "'/transaction/amount/currency' is not one of the currencies of a $fiat amount"},
		{name: "transaction crypto currency", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$sale", "amount": map[string]any{"type": "$crypto", "value": "0.1", "currency": "btc"}}}), code: http.StatusCreated},
		{name: "transaction base_amount a string", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$sale", "base_amount": "12.50"}}), code: http.StatusCreated},
		{name: "transaction base_amount a number", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$sale", "base_amount": 12.5}}), code: bad, typ: "invalid_parameters", msg: "'/transaction/base_amount' is not of type: string"},
		{name: "transaction base_amount null", body: ev(b, map[string]any{"transaction": map[string]any{"id": "t", "type": "$sale", "base_amount": nil}}), code: bad, typ: "invalid_parameters", msg: "'/transaction/base_amount' is not of type: string"},
		// A transaction's payment_method, shipping_address and merchant
		// (castle-java's generated PaymentMethod, PaymentMethodCard,
		// Address, Merchant and MerchantCategory).
		{name: "transaction with payment method, shipping address and merchant", body: ev(b, map[string]any{"transaction": fullTransaction(nil)}), code: http.StatusCreated},
		// Null where Castle takes an object is refused, as null is where
		// it takes a string (inferred: see optionalObject).
		{name: "transaction amount null", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"amount": null})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/amount' is not of type: object"},
		{name: "transaction payment method null", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": null})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method' is not of type: object"},
		{name: "transaction shipping address null", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"shipping_address": null})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/shipping_address' is not of type: object"},
		{name: "transaction merchant null", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"merchant": null})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/merchant' is not of type: object"},
		{name: "payment method card null", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": map[string]any{"type": "$card", "card": null}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method/card' is not of type: object"},
		{name: "payment method billing address null", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": map[string]any{"type": "$card", "billing_address": null}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method/billing_address' is not of type: object"},
		{name: "merchant category null", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"merchant": map[string]any{"category": null}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/merchant/category' is not of type: object"},
		{name: "merchant address null", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"merchant": map[string]any{"address": null}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/merchant/address' is not of type: object"},
		{name: "transaction null", body: ev(b, map[string]any{"transaction": null}), code: bad, typ: "invalid_parameters", msg: "'/transaction' is not of type: object"},
		{name: "user address null", body: ev(b, map[string]any{"user": map[string]any{"id": "u", "address": null}}), code: bad, typ: "invalid_parameters", msg: "'/user/address' is not of type: object"},
		{name: "transaction sub-objects with keys Castle does not name", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{
			"payment_method": map[string]any{"type": "$card", "wallet": "x", "card": map[string]any{"cvc_check": "pass"}},
			"merchant":       map[string]any{"mcc": 3000},
		})}), code: http.StatusCreated},
		{name: "payment method not an object", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": "$card"})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method' is not of type: object"},
		{name: "payment method without type", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": map[string]any{"bank_name": "B"}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method' is missing required properties: type"},
		{name: "payment method type not in the enum", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": map[string]any{"type": "card"}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method/type' is not one of: $aba,"},
		{name: "payment method holder_name a number", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": map[string]any{"type": "$sepa", "holder_name": 5}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method/holder_name' is not of type: string"},
		{name: "payment method country_code null", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": map[string]any{"type": "$sepa", "country_code": nil}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method/country_code' is not of type: string"},
		{name: "billing address without country", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": map[string]any{"type": "$card", "billing_address": map[string]any{"city": "Paris"}}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method/billing_address' is missing required properties: country_code"},
		{name: "card not an object", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": map[string]any{"type": "$card", "card": "4242"}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method/card' is not of type: object"},
		{name: "card last4 a number", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": map[string]any{"type": "$card", "card": map[string]any{"last4": 4242}}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method/card/last4' is not of type: string"},
		{name: "card exp_month a string", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": map[string]any{"type": "$card", "card": map[string]any{"exp_month": "12"}}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method/card/exp_month' is not of type: integer"},
		{name: "card exp_year a fraction", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": map[string]any{"type": "$card", "card": map[string]any{"exp_year": 2030.5}}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method/card/exp_year' is not of type: integer"},
		{name: "card network not in the enum", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": map[string]any{"type": "$card", "card": map[string]any{"network": "visa"}}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method/card/network' is not one of"},
		{name: "card funding not in the enum", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"payment_method": map[string]any{"type": "$card", "card": map[string]any{"funding": "$charge"}}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/payment_method/card/funding' is not one of"},
		{name: "shipping address not an object", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"shipping_address": "1 Main St"})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/shipping_address' is not of type: object"},
		{name: "shipping address without country", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"shipping_address": map[string]any{"line1": "1 Main St"}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/shipping_address' is missing required properties: country_code"},
		{name: "shipping address with a country's name", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"shipping_address": map[string]any{"country_code": "United States"}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/shipping_address/country_code' is not an ISO 3166"},
		{name: "shipping address postal_code a number", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"shipping_address": map[string]any{"country_code": "US", "postal_code": 94103}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/shipping_address/postal_code' is not of type: string"},
		{name: "merchant not an object", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"merchant": []string{"m1"}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/merchant' is not of type: object"},
		{name: "merchant id a number", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"merchant": map[string]any{"id": 7}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/merchant/id' is not of type: string"},
		{name: "merchant category code a number", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"merchant": map[string]any{"category": map[string]any{"code": 3000}}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/merchant/category/code' is not of type: string"},
		{name: "merchant address without country", body: ev(b, map[string]any{"transaction": fullTransaction(map[string]any{"merchant": map[string]any{"address": map[string]any{}}})}), code: bad, typ: "invalid_parameters", msg: "'/transaction/merchant/address' is missing required properties: country_code"},
		{name: "user address city a number", body: ev(b, map[string]any{"user": map[string]any{"id": "u", "address": map[string]any{"country_code": "FR", "city": 75}}}), code: bad, typ: "invalid_parameters", msg: "'/user/address/city' is not of type: string"},
		{name: "address with digits for a country", body: ev(b, map[string]any{"user": map[string]any{"id": "u", "address": map[string]any{"country_code": "12"}}}), code: bad, typ: "invalid_parameters", msg: "'/user/address/country_code' is not an ISO 3166"},
		{name: "address without country", body: ev(b, map[string]any{"user": map[string]any{"id": "u", "address": map[string]any{"city": "Paris"}}}), code: bad, typ: "invalid_parameters", msg: "'/user/address' is missing required properties: country_code"},
		{name: "address with a country's name", body: ev(b, map[string]any{"user": map[string]any{"id": "u", "address": map[string]any{"country_code": "France"}}}), code: bad, typ: "invalid_parameters", msg: "'/user/address/country_code' is not an ISO 3166"},
		{name: "skip flag not a boolean", body: ev(b, map[string]any{"skip_context_validation": "yes"}), code: bad, typ: "invalid_parameters", msg: "'/skip_context_validation' is not of type: boolean"},
		{name: "skip context", body: ev(b, map[string]any{"skip_context_validation": true, "context": nil}), code: http.StatusCreated},
		{name: "skip token", body: ev(b, map[string]any{"skip_request_token_validation": true, "request_token": nil}), code: http.StatusCreated},
		{name: "custom without name", body: ev(b, map[string]any{"type": "$custom"}), code: bad, typ: "invalid_parameters", msg: "name (required when type is $custom)"},
		{name: "nested property", body: ev(b, map[string]any{"properties": map[string]any{"a/b": map[string]any{}}}), code: bad, typ: "invalid_parameters", msg: "'/properties/a~1b'"},
		{name: "not an object", body: `[1]`, code: http.StatusBadRequest, typ: "bad_request"},
		{name: "not JSON", body: `{"type":`, code: http.StatusBadRequest, typ: "bad_request"},
	})
}

func TestValidateFilter(t *testing.T) {
	tok := castleserver.NewRequestToken(t0, "laptop")
	b := filterBody(tok)
	const bad = http.StatusUnprocessableEntity
	runCases(t, castleserver.FilterPath, []vcase{
		{name: "valid", body: ev(b, nil), code: http.StatusCreated},
		{name: "valid without status", body: ev(b, map[string]any{"status": nil}), code: http.StatusCreated},
		{name: "valid reset request with matching user", body: ev(b, map[string]any{"type": "$password_reset_request", "status": "$succeeded", "matching_user_id": "u9"}), code: http.StatusCreated},
		{name: "valid with deprecated user", body: ev(b, map[string]any{"user": map[string]any{"email": "x@example.com"}}), code: http.StatusCreated},
		{name: "valid transaction", body: ev(b, map[string]any{"type": "$transaction", "transaction": map[string]any{"id": "t1", "type": "$withdrawal"}}), code: http.StatusCreated},

		{name: "no token", body: ev(b, map[string]any{"request_token": nil}), code: bad, typ: "invalid_parameters", msg: "missing required properties: request_token"},
		{name: "no context", body: ev(b, map[string]any{"context": nil}), code: bad, typ: "invalid_parameters", msg: "missing required properties: context"},
		{name: "no type", body: ev(b, map[string]any{"type": nil}), code: bad, typ: "invalid_parameters", msg: "missing required properties: type"},
		{name: "logout not for filter", body: ev(b, map[string]any{"type": "$logout"}), code: bad, typ: "invalid_parameters", msg: "'/type' is not one of"},
		{name: "requested only on risk", body: ev(b, map[string]any{"type": "$challenge", "status": "$requested"}), code: bad, typ: "invalid_parameters", msg: "'/status' is not one of: $attempted, $succeeded, $failed"},
		{name: "changeset only on risk", body: ev(b, map[string]any{"changeset": map[string]any{}}), code: bad, typ: "invalid_parameters", msg: "'/changeset' is not accepted by /v1/filter (only by /v1/risk)"},
		{name: "params not an object", body: ev(b, map[string]any{"params": "a@b.io"}), code: bad, typ: "invalid_parameters", msg: "'/params' is not of type: object"},
		{name: "params email not a string", body: ev(b, map[string]any{"params": map[string]any{"email": 1}}), code: bad, typ: "invalid_parameters", msg: "'/params/email' is not of type: string"},
		{name: "matching_user_id not a string", body: ev(b, map[string]any{"matching_user_id": 5}), code: bad, typ: "invalid_parameters", msg: "'/matching_user_id' is not of type: string"},
		{name: "expand not strings", body: ev(b, map[string]any{"expand": []any{1}}), code: bad, typ: "invalid_parameters", msg: "'/expand/0' is not of type: string"},
	})
}

func TestValidateLog(t *testing.T) {
	b := map[string]any{"type": "$custom", "name": "Clicked", "user": map[string]any{"id": "u1"}}
	const bad = http.StatusUnprocessableEntity
	runCases(t, castleserver.LogPath, []vcase{
		{name: "valid", body: ev(b, nil), code: http.StatusNoContent},
		{name: "page", body: ev(b, map[string]any{"type": "$page", "name": nil}), code: http.StatusNoContent},
		{name: "login with status and any token", body: ev(b, map[string]any{"type": "$login", "status": "$failed", "request_token": "whatever"}), code: http.StatusNoContent},
		{name: "context without headers", body: ev(b, map[string]any{"context": map[string]any{"ip": "81.2.69.142"}}), code: http.StatusNoContent},
		{name: "anonymous", body: ev(b, map[string]any{"user": nil}), code: http.StatusNoContent},
		{name: "transaction", body: ev(b, map[string]any{"type": "$transaction", "transaction": map[string]any{"id": "t1", "type": "$deposit"}}), code: http.StatusNoContent},

		{name: "requested only on risk", body: ev(b, map[string]any{"type": "$challenge", "status": "$requested"}), code: bad, typ: "invalid_parameters", msg: "'/status' is not one of"},
		{name: "user without id", body: ev(b, map[string]any{"user": map[string]any{"email": "a@b.io"}}), code: bad, typ: "invalid_parameters", msg: "'/user' is missing required properties: id"},
		{name: "params only on filter", body: ev(b, map[string]any{"params": map[string]any{}}), code: bad, typ: "invalid_parameters", msg: "'/params' is not accepted by /v1/log"},
		{name: "changeset only on risk", body: ev(b, map[string]any{"changeset": map[string]any{}}), code: bad, typ: "invalid_parameters", msg: "'/changeset' is not accepted by /v1/log"},
		{name: "skip flags not on log", body: ev(b, map[string]any{"skip_request_token_validation": true}), code: bad, typ: "invalid_parameters", msg: "'/skip_request_token_validation' is not accepted by /v1/log"},
		{name: "token not a string", body: ev(b, map[string]any{"request_token": false}), code: bad, typ: "invalid_parameters", msg: "'/request_token' is not of type: string"},
		{name: "unknown type", body: ev(b, map[string]any{"type": "$screen"}), code: bad, typ: "invalid_parameters", msg: "'/type' is not one of"},
		{name: "bad created_at", body: ev(b, map[string]any{"created_at": "yesterday"}), code: bad, typ: "invalid_parameters", msg: "'/created_at' is not a valid date-time"},
		{name: "registered_at", body: ev(b, map[string]any{"user": map[string]any{"id": "u1", "registered_at": "2024-03-01T10:00:00.000Z"}}), code: http.StatusNoContent},
		{name: "bad registered_at", body: ev(b, map[string]any{"user": map[string]any{"id": "u1", "registered_at": "10000-01-01T00:00:00.000Z"}}), code: bad, typ: "invalid_parameters", msg: "'/user/registered_at' is not a valid date-time"},
		{name: "not an object", body: `["$custom"]`, code: http.StatusBadRequest, typ: "bad_request", msg: "must be a JSON object"},
		{name: "over 1 MiB", body: ev(b, map[string]any{"pad": strings.Repeat("x", 1<<20)}), code: http.StatusRequestEntityTooLarge, typ: "bad_request", msg: "larger than 1048576 bytes"},
	})
}

// TestRoutes: only the three paths are served; a base URL with an extra
// /v1 (or any other path) is 404 route_not_found, before auth.
func TestRoutes(t *testing.T) {
	s := newServer(t, castleserver.Config{})
	for _, path := range []string{"/v1/v1/log", "/v1/v1/risk", "/log", "/v1/track", "/v1/authenticate", "/v1/risk/", "/"} {
		a := postAs(t, s, path, `{"type":"$custom","name":"x"}`, "wrong secret")
		if a.code != http.StatusNotFound || a.errType() != "route_not_found" {
			t.Errorf("%s: %d %s, want 404 route_not_found", path, a.code, a.body)
		}
	}
	for _, path := range []string{castleserver.LogPath, castleserver.RiskPath, castleserver.FilterPath} {
		if a := postAs(t, s, path, `{}`, "wrong secret"); a.code != http.StatusUnauthorized || a.errType() != "unauthorized" {
			t.Errorf("%s with a wrong secret: %d %s, want 401 unauthorized", path, a.code, a.body)
		}
	}
}

// fullTransaction is a transaction with every object Castle's Transaction
// names, in the shape castle-java's generated models give, with set's
// members replacing its own (nil: JSON null).
func fullTransaction(set map[string]any) map[string]any {
	address := map[string]any{"line1": "60 Rausch Street", "city": "San Francisco", "country_code": "US",
		"region_code": "CA", "postal_code": "94103", "fingerprint": "8a33j2lir9"}
	t := map[string]any{
		"id": "t1", "type": "$purchase", "base_amount": "499.99",
		"amount": map[string]any{"type": "$fiat", "value": "499.99", "currency": "USD"},
		"payment_method": map[string]any{"type": "$card", "fingerprint": "f1", "holder_name": "A B", "bank_name": "Bank",
			"country_code": "US", "billing_address": address,
			"card": map[string]any{"bin": "424242", "last4": "4242", "exp_month": 12, "exp_year": 2030, "network": "$visa", "funding": "$credit"}},
		"shipping_address": address,
		"merchant": map[string]any{"id": "m1", "name": "United Airlines",
			"category": map[string]any{"code": "3000", "description": "Airlines"}, "address": address},
	}
	for k, v := range set {
		t[k] = v
	}
	return t
}
