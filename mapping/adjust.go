package mapping

import "strings"

// Adjustment is a set of the kinds of change the mapping made to what a
// message said on its way to Castle: data cut, converted or left out by a
// documented rule. Each kind is one bit; Result.Adjusted holds the kinds
// that apply to one message. The set is small and fixed, so the caller can
// count each kind under a bounded metric label (its String).
type Adjustment uint16

// The kinds of adjustment.
const (
	// AdjustKeysCapped: properties or traits had more than MaxKeys keys;
	// the keys past the cap were left out.
	AdjustKeysCapped Adjustment = 1 << iota
	// AdjustValueTruncated: a property or trait value, a flattened key or
	// the event name was cut to its length limit.
	AdjustValueTruncated
	// AdjustNumberNotFinite: a number JSON allows but a 64-bit float cannot
	// hold (1e999) was sent as a string instead.
	AdjustNumberNotFinite
	// AdjustTokenNotString: a requestToken that is not a string was
	// ignored.
	AdjustTokenNotString
	// AdjustTokenStale: a requestToken was left out because the event is
	// more than 120 s away from now, or has no readable time.
	AdjustTokenStale
	// AdjustRegisteredAtInvalid: a registeredAt or createdAt trait that is
	// no time stayed in user.traits instead of becoming registered_at.
	AdjustRegisteredAtInvalid
	// AdjustIPNotPublic: context.ip was given but is not a public address,
	// so no context was sent.
	AdjustIPNotPublic
	// AdjustAddressNoCountry: an address without an ISO 3166 two-letter
	// country (Castle requires user.address.country_code) stayed in
	// user.traits instead of becoming user.address.
	AdjustAddressNoCountry
	// AdjustReservedInvalid: a security event's transaction or changeset
	// that Castle's schema would refuse (no id or unknown type; fields
	// Castle does not know) stayed in properties.
	AdjustReservedInvalid

	adjustEnd // one past the last kind
)

var adjustmentNames = [...]string{
	"keys_capped", "value_truncated", "number_not_finite", "token_not_string",
	"token_stale", "registered_at_invalid", "ip_not_public", "address_no_country",
	"reserved_invalid",
}

// Adjustments lists every kind, one bit each, for pre-initialising metric
// labels.
func Adjustments() []Adjustment {
	out := make([]Adjustment, 0, len(adjustmentNames))
	for k := Adjustment(1); k < adjustEnd; k <<= 1 {
		out = append(out, k)
	}
	return out
}

// Has reports whether the set a holds every kind in k.
func (a Adjustment) Has(k Adjustment) bool { return a&k == k }

// String is the snake_case name of one kind (a metric label value), or the
// names of a set's kinds joined by "+"; "none" for the empty set.
func (a Adjustment) String() string {
	if a == 0 {
		return "none"
	}
	var names []string
	for i, k := 0, Adjustment(1); k < adjustEnd; i, k = i+1, k<<1 {
		if a&k != 0 {
			names = append(names, adjustmentNames[i])
		}
	}
	if a&^(adjustEnd-1) != 0 {
		names = append(names, "unknown")
	}
	return strings.Join(names, "+")
}
