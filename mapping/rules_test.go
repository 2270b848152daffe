package mapping

import (
	"regexp"
	"testing"
)

func TestRegisteredAt(t *testing.T) {
	for in, want := range map[string]string{
		`1648215849`:             "2022-03-25T13:44:09.000Z",
		`"1648215849"`:           "2022-03-25T13:44:09.000Z",
		`1648215849123`:          "2022-03-25T13:44:09.123Z",
		` "1648215849123" `:      "2022-03-25T13:44:09.123Z",
		`1648215849.5`:           "2022-03-25T13:44:09.500Z",
		`"1648215849.123"`:       "2022-03-25T13:44:09.123Z",
		`1.648215849e9`:          "2022-03-25T13:44:09.000Z",
		`0`:                      "1970-01-01T00:00:00.000Z",
		`"2022-03-25T13:44:09Z"`: "2022-03-25T13:44:09.000Z",
		`"2015-2-02T00:30:08Z"`:  "2015-02-02T00:30:08.000Z",
		`253402300799`:           "9999-12-31T23:59:59.000Z",
		`"yesterday"`:            "",
		`"1.5e9"`:                "",
		`"1648215849."`:          "",
		`""`:                     "",
		`-5`:                     "",
		`253402300800`:           "", // year 10000
		`16482158491234`:         "", // 14 digits: seconds, far past 9999
		`true`:                   "",
		`null`:                   "",
		`{}`:                     "",
		`[1648215849]`:           "",
		``:                       "",
	} {
		got, ok := registeredAt([]byte(in))
		if got != want || ok != (want != "") {
			t.Errorf("registeredAt(%s) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestAdjustments(t *testing.T) {
	all := Adjustments()
	if len(all) != len(adjustmentNames) {
		t.Fatalf("%d kinds, %d names", len(all), len(adjustmentNames))
	}
	label := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	seen := map[string]bool{}
	var set Adjustment
	for _, k := range all {
		name := k.String()
		if !label.MatchString(name) || seen[name] {
			t.Errorf("kind %d: name %q is not a unique snake_case label", k, name)
		}
		seen[name] = true
		if k&(k-1) != 0 {
			t.Errorf("kind %s is not one bit: %b", name, k)
		}
		set |= k
	}
	if !set.Has(AdjustKeysCapped|AdjustTokenStale) || Adjustment(0).Has(AdjustKeysCapped) {
		t.Error("Has is wrong")
	}
	if got := (AdjustKeysCapped | AdjustIPNotPublic).String(); got != "keys_capped+ip_not_public" {
		t.Errorf("set string %q", got)
	}
	if got := Adjustment(0).String(); got != "none" {
		t.Errorf("empty set string %q", got)
	}
}
