package verdict

import "slices"

// documentedSignals are the signal names of Castle's "Signals" reference
// (https://docs.castle.io/docs/signals-reference), sorted. The page lists
// them in groups: automated activity, anomalous behaviour, device-data
// errors, device intelligence, email intelligence, IP intelligence and
// novel user attributes. Names are also taken from Castle's own examples:
// disposable_email and spoofed_device (the page's example responses and
// the OpenAPI example of castle-java's FilterAndRiskResponse),
// unapproved_country (the legacy v1 Signals page), unreachable_email and
// fraudulent_email_domain (Castle's changelog). destination/CASTLE_API.md
// says which names were read where.
var documentedSignals = []string{
	"abuse_ip",
	"bot_behavior",
	"carrier_ip_country_mismatch",
	"credential_stuffing",
	"datacenter_ip",
	"disposable_email",
	"disposable_email_domain",
	"emulated_device",
	"fraudulent_email_domain",
	"generated_email",
	"headless_browser",
	"high_activity_account",
	"high_activity_device",
	"high_activity_ip",
	"http_client_library",
	"impossible_travel",
	"invalid_device_data",
	"invalid_email",
	"low_quality_email",
	"missing_device_data",
	"missing_headers",
	"multiple_accounts_per_device",
	"multiple_aliases_per_email",
	"new_country",
	"new_device",
	"new_device_type",
	"new_isp",
	"new_language",
	"new_os",
	"proxy_ip",
	"replayed_device_data",
	"rooted_device",
	"spoofed_device",
	"timezone_area_mismatch",
	"tor_ip",
	"unapproved_country",
	"unreachable_email",
	"web_crawler",
}

// DocumentedSignals returns the signal names Castle documents, sorted (a
// copy: the caller may keep or change it).
func DocumentedSignals() []string { return slices.Clone(documentedSignals) }

// otherSignal is the label of every signal name Castle does not document
// (custom signals, new ones).
const otherSignal = "other"

// SignalLabel is the metric label of a signal: its name when Castle
// documents it, else "other". The label set is therefore bounded.
func SignalLabel(name string) string {
	if _, ok := slices.BinarySearch(documentedSignals, name); ok {
		return name
	}
	return otherSignal
}

// actionNone labels a verdict without a usable policy action.
const actionNone = "none"

// ActionLabel is the metric label of a policy action: allow, challenge or
// deny, else "none" (no policy, or an action Castle does not document).
func ActionLabel(action string) string {
	switch action {
	case ActionAllow, ActionChallenge, ActionDeny:
		return action
	}
	return actionNone
}
