package castleserver

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// validationError is a rejected body: status, Castle error type, message.
type validationError struct {
	status  int
	typ     string
	message string
}

// invalid builds Castle's 422: "One or more parameters are invalid: ..."
// naming the JSON pointer, as in castle-node PR #127.
func invalid(format string, args ...any) *validationError {
	return &validationError{
		status:  http.StatusUnprocessableEntity,
		typ:     "invalid_parameters",
		message: "One or more parameters are invalid: \n" + fmt.Sprintf(format, args...),
	}
}

// Error is the answer's status, error type and message.
func (e *validationError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.status, e.typ, e.message)
}

var errNotObject = &validationError{http.StatusBadRequest, "bad_request", "The request body must be a JSON object"}

// errTooLarge is the 413 for a body over limit bytes.
func errTooLarge(limit int64) *validationError {
	return &validationError{http.StatusRequestEntityTooLarge, "bad_request",
		fmt.Sprintf("Request body is larger than %d bytes", limit)}
}

// Validate reports whether the server would refuse body as a request to
// path (LogPath, RiskPath or FilterPath) for its size (413) or its fields
// (400, 422): the checks ServeHTTP makes on a body, with the same
// messages. It does not check the request token, authentication, rate
// limits or faults, so a nil error means the body meets the contract, not
// that a request with it would be accepted. It records nothing.
func (s *Server) Validate(path string, body []byte) error {
	ep, ok := endpointOf(path)
	if !ok {
		return fmt.Errorf("castle server: no endpoint %q", path)
	}
	if int64(len(body)) > s.cfg.MaxBodyBytes {
		return errTooLarge(s.cfg.MaxBodyBytes)
	}
	if _, err := s.validate(ep, body); err != nil {
		return err
	}
	return nil
}

// parsed is what the server reads out of a valid body.
type parsed struct {
	ep                  endpoint
	typ, status, name   string
	userID, email       string
	createdAt           time.Time
	token               string
	skipToken, skipCtx  bool
	ip, userAgent       string
	hasContext          bool
	matchingUserID      string
	paramEmail          string
	paramPhone, paramUN string
}

// limitKey is the user the per-user rate limit counts the request for.
func (p *parsed) limitKey() string {
	if p.userID == "" && p.ep == epFilter {
		return p.matchingUserID
	}
	return p.userID
}

// onlyOn lists the top-level fields Castle documents for some endpoints
// only, with the endpoints that take them.
var onlyOn = []struct {
	field string
	eps   []endpoint
}{
	{"params", []endpoint{epFilter}},
	{"matching_user_id", []endpoint{epFilter}},
	{"changeset", []endpoint{epRisk}},
	{"skip_request_token_validation", []endpoint{epRisk, epFilter}},
	{"skip_context_validation", []endpoint{epRisk, epFilter}},
	{"expand", []endpoint{epRisk, epFilter}},
}

// transactionTypes is the published enum of transaction.type.
var transactionTypes = []string{"$purchase", "$withdrawal", "$deposit", "$transfer", "$reward", "$sale"}

// amountTypes is the published enum of transaction.amount.type;
// changesetFields the fields a changeset may name (castle-java's generated
// Amount and Changeset models: the field is authentication_method.type,
// with a dot, the key of ChangesetEntry's own example).
var (
	amountTypes     = []string{"$fiat", "$crypto"}
	changesetFields = []string{"password", "email", "phone", "authentication_method.type", "name"}
)

// validate checks body against what Castle documents for ep. Fields no
// endpoint documents (sent_at, timestamp, ...) are accepted as they are;
// product, session and authentication_method are accepted unchecked.
func (s *Server) validate(ep endpoint, body []byte) (parsed, *validationError) {
	out := parsed{ep: ep}
	d, err := parseJSON(body)
	if err != nil {
		return out, errNotObject
	}
	defer d.free()
	const root = 0
	if d.kind(root) != jObject {
		return out, errNotObject
	}

	// Required fields, named together as a JSON schema validator does.
	required := []string{"type"}
	switch ep {
	case epRisk:
		required = append(required, "status", "request_token", "context", "user")
	case epFilter:
		required = append(required, "request_token", "context")
	}
	skipToken, skipCtx := false, false
	for _, f := range []struct {
		name string
		dst  *bool
	}{{"skip_request_token_validation", &skipToken}, {"skip_context_validation", &skipCtx}} {
		if v := d.get(root, f.name); v >= 0 && ep.scored() {
			if d.kind(v) != jBool {
				return out, notOfType("/"+f.name, "boolean")
			}
			*f.dst = d.isTrue(v)
		}
	}
	out.skipToken, out.skipCtx = skipToken, skipCtx
	var missing []string
	for _, f := range required {
		if (f == "request_token" && skipToken) || (f == "context" && skipCtx) {
			continue
		}
		if v := d.get(root, f); v < 0 || d.kind(v) == jNull && f != "request_token" {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return out, invalid("root is missing required properties: %s", strings.Join(missing, ", "))
	}
	for _, o := range onlyOn {
		if d.get(root, o.field) >= 0 && !slices.Contains(o.eps, ep) {
			paths := make([]string, len(o.eps))
			for i, e := range o.eps {
				paths[i] = e.path()
			}
			return out, invalid("property '/%s' is not accepted by %s (only by %s)", o.field, ep.path(), strings.Join(paths, ", "))
		}
	}

	t := d.get(root, "type")
	if d.kind(t) != jString {
		return out, notOfType("/type", "string")
	}
	out.typ = d.text(t)
	if _, ok := s.types[ep][out.typ]; !ok {
		return out, invalid("property '/type' is not one of: %s", strings.Join(s.typeList(ep), ", "))
	}
	if n := d.get(root, "name"); n >= 0 {
		if d.kind(n) != jString {
			return out, notOfType("/name", "string")
		}
		if d.runes(n) > s.cfg.MaxNameLength {
			return out, invalid("property '/name' is longer than %d characters", s.cfg.MaxNameLength)
		}
		out.name = d.text(n)
	}
	if out.typ == "$custom" && out.name == "" {
		return out, invalid("root is missing required properties: name (required when type is $custom)")
	}
	if st := d.get(root, "status"); st >= 0 {
		if d.kind(st) != jString {
			return out, notOfType("/status", "string")
		}
		out.status = d.text(st)
		statuses := logStatuses
		if ep == epRisk {
			statuses = riskStatuses
		}
		if !slices.Contains(statuses, out.status) {
			return out, invalid("property '/status' is not one of: %s", strings.Join(statuses, ", "))
		}
		if out.status == "$requested" && out.typ != "$challenge" {
			return out, invalid("property '/status' may be $requested only when type is $challenge")
		}
	}
	if tok := d.get(root, "request_token"); tok >= 0 {
		if d.kind(tok) != jString {
			return out, notOfType("/request_token", "string")
		}
		out.token = d.text(tok)
	}
	if ca := d.get(root, "created_at"); ca >= 0 {
		if d.kind(ca) != jString {
			return out, notOfType("/created_at", "string")
		}
		ts, err := time.Parse(time.RFC3339Nano, d.text(ca))
		if err != nil {
			return out, invalid("property '/created_at' is not a valid date-time (RFC 3339)")
		}
		out.createdAt = ts
	}
	if err := s.flatObject(d, d.get(root, "properties"), "/properties"); err != nil {
		return out, err
	}
	if u := d.get(root, "user"); u >= 0 && d.kind(u) != jNull {
		if err := s.validateUser(d, u, ep, &out); err != nil {
			return out, err
		}
	}
	if c := d.get(root, "context"); c >= 0 && d.kind(c) != jNull {
		if err := validateContext(d, c, ep.scored(), &out); err != nil {
			return out, err
		}
	}
	if err := validateParams(d, d.get(root, "params"), &out); err != nil {
		return out, err
	}
	if m := d.get(root, "matching_user_id"); m >= 0 && d.kind(m) != jNull {
		if d.kind(m) != jString {
			return out, notOfType("/matching_user_id", "string")
		}
		out.matchingUserID = d.text(m)
	}
	if c := d.get(root, "changeset"); c >= 0 {
		if d.kind(c) != jObject {
			return out, notOfType("/changeset", "object")
		}
		for m := d.nodes[c].child; m >= 0; m = d.nodes[m].next {
			ptr := "/changeset/" + escapePointer(d.key(m))
			if !slices.Contains(changesetFields, d.key(m)) {
				return out, invalid("property '%s' is not allowed: a changeset names %s", ptr, strings.Join(changesetFields, ", "))
			}
			if d.kind(m) != jObject {
				return out, notOfType(ptr, "object")
			}
			from, to, changed := d.get(m, "from"), d.get(m, "to"), d.get(m, "changed")
			if (from < 0) != (to < 0) {
				return out, invalid("property '%s' is missing required properties: from, to", ptr)
			}
			if from < 0 && (changed < 0 || !d.isTrue(changed)) {
				return out, invalid("property '%s' is neither {from, to} nor {changed: true}", ptr)
			}
			// castle-java's generated Changeset: password is a
			// ChangedChangesetEntry, which has no from or to.
			if from >= 0 && d.key(m) == "password" {
				return out, invalid("property '%s' is not {changed: true}: a password change carries no values", ptr)
			}
			// castle-java's generated ChangesetEntry: from and to are
			// nullable strings.
			for _, f := range []struct {
				name string
				v    int32
			}{{"from", from}, {"to", to}} {
				if f.v >= 0 && d.kind(f.v) != jString && d.kind(f.v) != jNull {
					return out, notOfType(ptr+"/"+f.name, "string, null")
				}
			}
		}
	}
	if err := validateTransaction(d, d.get(root, "transaction")); err != nil {
		return out, err
	}
	if e := d.get(root, "expand"); e >= 0 {
		if d.kind(e) != jArray {
			return out, notOfType("/expand", "array")
		}
		i := 0
		for m := d.nodes[e].child; m >= 0; m = d.nodes[m].next {
			if d.kind(m) != jString {
				return out, notOfType("/expand/"+strconv.Itoa(i), "string")
			}
			i++
		}
	}
	return out, nil
}

func (s *Server) typeList(ep endpoint) []string {
	switch ep {
	case epRisk:
		return riskTypes
	case epFilter:
		return filterTypes
	}
	return s.cfg.Types
}

func validateParams(d *doc, p int32, out *parsed) *validationError {
	if p < 0 || d.kind(p) == jNull {
		return nil
	}
	if d.kind(p) != jObject {
		return notOfType("/params", "object")
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"email", &out.paramEmail}, {"phone", &out.paramPhone}, {"username", &out.paramUN}} {
		if v := d.get(p, f.name); v >= 0 && d.kind(v) != jNull {
			if d.kind(v) != jString {
				return notOfType("/params/"+f.name, "string")
			}
			*f.dst = d.text(v)
		}
	}
	return nil
}

func validateTransaction(d *doc, t int32) *validationError {
	if ok, err := optionalObject(d, t, "/transaction"); !ok {
		return err
	}
	var missing []string
	for _, f := range []string{"type", "id"} {
		if d.get(t, f) < 0 {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return invalid("property '/transaction' is missing required properties: %s", strings.Join(missing, ", "))
	}
	if id := d.get(t, "id"); d.kind(id) != jString {
		return notOfType("/transaction/id", "string")
	}
	ty := d.get(t, "type")
	if d.kind(ty) != jString {
		return notOfType("/transaction/type", "string")
	}
	if !slices.Contains(transactionTypes, d.text(ty)) {
		return invalid("property '/transaction/type' is not one of: %s", strings.Join(transactionTypes, ", "))
	}
	// castle-java's generated Transaction types base_amount as a string,
	// as Amount does value.
	if v := d.get(t, "base_amount"); v >= 0 && d.kind(v) != jString {
		return notOfType("/transaction/base_amount", "string")
	}
	if err := validateAmount(d, d.get(t, "amount")); err != nil {
		return err
	}
	if err := validatePaymentMethod(d, d.get(t, "payment_method")); err != nil {
		return err
	}
	if err := validateAddress(d, d.get(t, "shipping_address"), "/transaction/shipping_address"); err != nil {
		return err
	}
	return validateMerchant(d, d.get(t, "merchant"))
}

func validateAmount(d *doc, a int32) *validationError {
	const ptr = "/transaction/amount"
	if ok, err := optionalObject(d, a, ptr); !ok {
		return err
	}
	if err := enumField(d, a, ptr, "type", amountTypes, true); err != nil {
		return err
	}
	if err := stringFields(d, a, ptr, "value", "currency"); err != nil {
		return err
	}
	// castle-java's Amount (and FiatAmount): currency is "required when
	// value is provided".
	if d.get(a, "value") >= 0 && d.get(a, "currency") < 0 {
		return invalid("property '/transaction/amount' is missing required properties: currency")
	}
	if c := d.get(a, "currency"); c >= 0 && d.text(d.get(a, "type")) == "$fiat" && !slices.Contains(fiatCurrencies, d.text(c)) {
		return invalid("property '/transaction/amount/currency' is not one of the currencies of a $fiat amount: %s", strings.Join(fiatCurrencies, ", "))
	}
	return nil
}

// fiatCurrencies is the published enum of a $fiat amount's currency
// (castle-java's generated FiatAmount, CurrencyEnum; a $crypto amount's
// currency is any string, CryptoAmount).
var fiatCurrencies = strings.Fields("AED ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BMD BND BOB BRL BSD BWP " +
	"BYN BZD CAD CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ETB EUR FJD FKP " +
	"GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD ISK JMD JOD " +
	"JPY KES KGS KHR KMF KRW KWD KYD KZT LAK LBP LKR LYD MAD MDL MKD MMK MNT MOP MRU " +
	"MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG " +
	"QAR RON RSD RUB RWF SAR SBD SCR SEK SGD SHP SLL SOS SRD STN SVC SZL THB TND TOP " +
	"TRY TTD TWD TZS UAH UGX USD UYU UZS VEF VND VUV WST XAF XCD XOF XPF YER ZAR ZMW")

// paymentMethodTypes, cardNetworks and cardFundings are the published
// enums of transaction.payment_method.type and of its card's network and
// funding (castle-java's generated PaymentMethod and PaymentMethodCard).
var (
	paymentMethodTypes = []string{"$aba", "$ach", "$amazon_pay", "$android_pay", "$apple_pay", "$blinc",
		"$boleto", "$card", "$crypto_wallet", "$fps", "$google_pay", "$other", "$paypal", "$samsung_pay",
		"$sen", "$sepa", "$signet", "$wire"}
	cardNetworks = []string{"$amex", "$cartes_bancaires", "$diners", "$discover", "$interac", "$jcb",
		"$mastercard", "$other", "$unionpay", "$visa"}
	cardFundings = []string{"$credit", "$debit", "$other", "$prepaid"}
)

// validatePaymentMethod checks a transaction's payment_method as
// castle-java's generated PaymentMethod and PaymentMethodCard type it: a
// required type from its enum; fingerprint, holder_name, bank_name and
// country_code strings; a billing_address an Address; a card whose bin
// and last4 are strings, exp_month and exp_year integers, network and
// funding from their enums. Other members are accepted, as on the
// transaction itself (castle-node's typings allow any further key).
func validatePaymentMethod(d *doc, p int32) *validationError {
	const ptr = "/transaction/payment_method"
	if ok, err := optionalObject(d, p, ptr); !ok {
		return err
	}
	if err := enumField(d, p, ptr, "type", paymentMethodTypes, true); err != nil {
		return err
	}
	if err := stringFields(d, p, ptr, "fingerprint", "holder_name", "bank_name", "country_code"); err != nil {
		return err
	}
	if err := validateAddress(d, d.get(p, "billing_address"), ptr+"/billing_address"); err != nil {
		return err
	}
	c := d.get(p, "card")
	if ok, err := optionalObject(d, c, ptr+"/card"); !ok {
		return err
	}
	if err := stringFields(d, c, ptr+"/card", "bin", "last4"); err != nil {
		return err
	}
	for _, f := range []string{"exp_month", "exp_year"} {
		if v := d.get(c, f); v >= 0 && !d.isInteger(v) {
			return notOfType(ptr+"/card/"+f, "integer")
		}
	}
	if err := enumField(d, c, ptr+"/card", "network", cardNetworks, false); err != nil {
		return err
	}
	return enumField(d, c, ptr+"/card", "funding", cardFundings, false)
}

// validateMerchant checks a transaction's merchant as castle-java's
// generated Merchant and MerchantCategory type it: nothing required; id
// and name strings; a category of string code and description; an
// address an Address.
func validateMerchant(d *doc, m int32) *validationError {
	const ptr = "/transaction/merchant"
	if ok, err := optionalObject(d, m, ptr); !ok {
		return err
	}
	if err := stringFields(d, m, ptr, "id", "name"); err != nil {
		return err
	}
	c := d.get(m, "category")
	ok, err := optionalObject(d, c, ptr+"/category")
	if err == nil && ok {
		err = stringFields(d, c, ptr+"/category", "code", "description")
	}
	if err != nil {
		return err
	}
	return validateAddress(d, d.get(m, "address"), ptr+"/address")
}

// optionalObject checks a member (v < 0: absent) that Castle types as an
// object and does not require: it reports whether the member is there,
// and refuses anything but an object, null too. Castle refuses null where
// it takes a string (its 422 for a null request_token), and its schema
// validation would refuse a null object alike; that it does is inferred.
func optionalObject(d *doc, v int32, ptr string) (bool, *validationError) {
	switch {
	case v < 0:
		return false, nil
	case d.kind(v) != jObject:
		return false, notOfType(ptr, "object")
	}
	return true, nil
}

// validateAddress checks an optional (a < 0: absent) address as
// castle-java's generated Address types it, wherever one is sent
// (user.address, a transaction's shipping_address, its payment method's
// billing_address, its merchant's address): a required country_code, an
// ISO 3166 code ("ISO-3166 country code", example "US"; two capital
// letters here), and line1, line2, city, region_code, postal_code and
// fingerprint strings.
func validateAddress(d *doc, a int32, ptr string) *validationError {
	if ok, err := optionalObject(d, a, ptr); !ok {
		return err
	}
	cc := d.get(a, "country_code")
	if cc < 0 {
		return invalid("property '%s' is missing required properties: country_code", ptr)
	}
	if d.kind(cc) != jString || !countryCode(d.text(cc)) {
		return invalid("property '%s/country_code' is not an ISO 3166 country code", ptr)
	}
	return stringFields(d, a, ptr, "line1", "line2", "city", "region_code", "postal_code", "fingerprint")
}

// countryCode reports whether c has the form of an ISO 3166-1 alpha-2
// code: two capital letters.
func countryCode(c string) bool {
	return len(c) == 2 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z'
}

// stringFields checks that the named members of object n, where present,
// are strings (null is not one: Castle refuses a null request_token).
func stringFields(d *doc, n int32, ptr string, names ...string) *validationError {
	for _, f := range names {
		if v := d.get(n, f); v >= 0 && d.kind(v) != jString {
			return notOfType(ptr+"/"+f, "string")
		}
	}
	return nil
}

// enumField checks member name of object n: a string from enum, when
// present; required says it must be.
func enumField(d *doc, n int32, ptr, name string, enum []string, required bool) *validationError {
	v := d.get(n, name)
	if v < 0 {
		if required {
			return invalid("property '%s' is missing required properties: %s", ptr, name)
		}
		return nil
	}
	if d.kind(v) != jString || !slices.Contains(enum, d.text(v)) {
		return invalid("property '%s/%s' is not one of: %s", ptr, name, strings.Join(enum, ", "))
	}
	return nil
}

func notOfType(ptr, want string) *validationError {
	return invalid("property '%s' is not of type: %s", ptr, want)
}

// validateUser checks a sent user; on the scored endpoints it also reads
// the email the verdict rules use.
func (s *Server) validateUser(d *doc, u int32, ep endpoint, out *parsed) *validationError {
	// A user is required on /v1/risk only, but one sent to /v1/log needs
	// an id too: castle-java's generated User and RiskUser models mark it
	// required. /v1/filter's user is deprecated, and kept lenient.
	needID := ep != epFilter
	if d.kind(u) != jObject {
		return notOfType("/user", "object")
	}
	v := d.get(u, "id")
	switch {
	case v >= 0 && d.kind(v) != jString:
		return notOfType("/user/id", "string")
	case v >= 0:
		out.userID = d.text(v)
	}
	if needID && out.userID == "" {
		return invalid("property '/user' is missing required properties: id")
	}
	for _, f := range []string{"email", "phone", "name", "registered_at"} {
		if v := d.get(u, f); v >= 0 && d.kind(v) != jString {
			return notOfType("/user/"+f, "string")
		}
	}
	// castle-java's generated User and RiskUser: registered_at is an
	// OffsetDateTime (format date-time), as created_at is.
	if v := d.get(u, "registered_at"); v >= 0 {
		if _, err := time.Parse(time.RFC3339Nano, d.text(v)); err != nil {
			return invalid("property '/user/registered_at' is not a valid date-time (RFC 3339)")
		}
	}
	if v := d.get(u, "email"); v >= 0 && ep.scored() {
		out.email = d.text(v)
	}
	if err := validateAddress(d, d.get(u, "address"), "/user/address"); err != nil {
		return err
	}
	return s.flatObject(d, d.get(u, "traits"), "/user/traits")
}

// flatObject checks an optional (v < 0: absent) one-level object of string
// (bounded), number, boolean or null values. The first offending member,
// in document order, is named.
func (s *Server) flatObject(d *doc, v int32, ptr string) *validationError {
	if v < 0 || d.kind(v) == jNull {
		return nil
	}
	if d.kind(v) != jObject {
		return notOfType(ptr, "object")
	}
	for c := d.nodes[v].child; c >= 0; c = d.nodes[c].next {
		switch d.kind(c) {
		case jObject, jArray:
			return notOfType(ptr+"/"+escapePointer(d.key(c)), "string, number, boolean, null")
		case jString:
			if d.runes(c) > s.cfg.MaxStringLength {
				return invalid("property '%s/%s' is longer than %d characters", ptr, escapePointer(d.key(c)), s.cfg.MaxStringLength)
			}
		}
	}
	return nil
}

// validateContext checks a sent context. Scored endpoints require its
// headers (Castle's schema requires them everywhere; /v1/log here accepts
// their absence), and read the IP and User-Agent the verdict rules use.
func validateContext(d *doc, c int32, scored bool, out *parsed) *validationError {
	needHeaders := scored
	if d.kind(c) != jObject {
		return notOfType("/context", "object")
	}
	out.hasContext = true
	ip := d.get(c, "ip")
	h := d.get(c, "headers")
	var missing []string
	if ip < 0 {
		missing = append(missing, "ip")
	}
	if needHeaders && (h < 0 || d.kind(h) == jNull) {
		missing = append(missing, "headers")
	}
	if len(missing) > 0 {
		return invalid("property '/context' is missing required properties: %s", strings.Join(missing, ", "))
	}
	if d.kind(ip) != jString {
		return notOfType("/context/ip", "string")
	}
	ipText := d.text(ip)
	if scored {
		out.ip = ipText
	}
	if !publicIP(ipText) {
		return invalid("property '/context/ip' must be a valid, public IP")
	}
	if l := d.get(c, "library"); l >= 0 && d.kind(l) != jNull && d.kind(l) != jObject {
		return notOfType("/context/library", "object")
	}
	if h < 0 || d.kind(h) == jNull {
		return nil
	}
	switch d.kind(h) {
	case jObject:
		// What every Castle SDK sends: values are strings, or true for a
		// scrubbed header (Cookie, Authorization).
		for m := d.nodes[h].child; m >= 0; m = d.nodes[m].next {
			if d.kind(m) != jString && !d.isTrue(m) {
				return notOfType("/context/headers/"+escapePointer(d.key(m)), "string, true")
			}
			if scored && d.kind(m) == jString && strings.EqualFold(d.key(m), "User-Agent") {
				out.userAgent = d.text(m)
			}
		}
	case jArray:
		// The form of the OpenAPI example: [[name, value], ...].
		i := 0
		for p := d.nodes[h].child; p >= 0; p = d.nodes[p].next {
			first := d.nodes[p].child
			if d.kind(p) != jArray || d.children(p) != 2 || d.kind(first) != jString || d.kind(d.nodes[first].next) != jString {
				return invalid("property '/context/headers/%d' is not a [name, value] pair of strings", i)
			}
			if scored && strings.EqualFold(d.text(first), "User-Agent") {
				out.userAgent = d.text(d.nodes[first].next)
			}
			i++
		}
	default:
		return notOfType("/context/headers", "object")
	}
	return nil
}

// publicIP: a valid IPv4 or IPv6 address that is global unicast and not
// private (RFC 1918, RFC 4193). Loopback, link-local, multicast and
// unspecified addresses are not global unicast. Documentation ranges
// (192.0.2.0/24, 2001:db8::/32, ...) are accepted, so examples work.
func publicIP(s string) bool {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return false
	}
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate()
}

// escapePointer escapes a key for a JSON pointer (RFC 6901).
func escapePointer(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
