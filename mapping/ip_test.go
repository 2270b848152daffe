package mapping

import (
	"net/netip"
	"testing"
)

func TestPublicIP(t *testing.T) {
	for _, tc := range []struct {
		ip     string
		public bool
	}{
		{"81.2.69.142", true}, {"8.8.8.8", true}, {"1.1.1.1", true}, {"100.63.255.255", true}, {"100.128.0.0", true},
		{"192.0.1.1", true}, {"198.17.255.255", true}, {"198.20.0.0", true}, {"223.255.255.255", true},
		{"192.0.0.9", true}, {"192.0.0.10", true}, {"192.31.196.1", true}, {"192.52.193.1", true}, {"192.175.48.1", true},
		{"192.88.99.2", true},
		{"0.0.0.0", false}, {"0.1.2.3", false}, {"10.1.2.3", false}, {"100.64.0.1", false}, {"100.127.255.255", false},
		{"127.0.0.1", false}, {"169.254.1.1", false}, {"172.16.0.1", false}, {"172.31.255.255", false},
		{"192.0.0.1", false}, {"192.0.0.8", false}, {"192.0.0.11", false}, {"192.0.0.170", false}, {"192.0.0.171", false}, {"192.0.0.255", false},
		{"192.0.2.1", false}, {"192.88.99.1", false}, {"192.168.1.1", false}, {"198.18.0.1", false}, {"198.19.255.255", false},
		{"198.51.100.7", false}, {"203.0.113.9", false}, {"224.0.0.1", false}, {"239.255.255.255", false},
		{"240.0.0.1", false}, {"255.255.255.255", false},
		{"2a00:1450:4001:80b::200e", true}, {"2001:4860:4860::8888", true}, {"2606:4700:4700::1111", true},
		{"64:ff9b::81.2.69.142", true}, {"2001:1::1", true}, {"2001:1::2", true}, {"2001:1::3", true}, {"2001:3::1", true},
		{"2001:4:112::1", true}, {"2001:20::1", true}, {"2001:30::1", true}, {"2001:200::1", true}, {"2620:4f:8000::1", true},
		{"3fff:1000::1", true}, {"2fff::1", true},
		{"::", false}, {"::1", false}, {"::ffff:10.0.0.1", false}, {"::ffff:81.2.69.142", true}, {"::1.2.3.4", false},
		{"64:ff9b:1::1", false}, {"100::1", false}, {"100:0:0:1::1", false}, {"2001::1", false}, {"2001:0:4136:e378::1", false},
		{"2001:1::4", false}, {"2001:2::1", false}, {"2001:10::1", false}, {"2001:1ff::1", false}, {"2001:db8::1", false},
		{"2002:5102:458e::1", false}, {"3fff::1", false}, {"3fff:fff::1", false}, {"5f00::1", false},
		{"fc00::1", false}, {"fd12:3456::1", false}, {"fe80::1", false}, {"febf::1", false}, {"fec0::1", false},
		{"ff02::1", false}, {"4000::1", false}, {"1::1", false},
		{"fe80::1%eth0", false}, {"", false}, {"not-an-ip", false}, {"81.2.69.142:80", false}, {"081.2.69.142", false},
		{"1.2.3", false}, {" 81.2.69.142", false},
	} {
		if got := PublicIP(tc.ip); got != tc.public {
			t.Errorf("PublicIP(%q) = %v, want %v", tc.ip, got, tc.public)
		}
	}
}

// The table is sorted by family and address, has no block twice, and every
// address belongs to some block.
func TestIPBlocks(t *testing.T) {
	seen := map[netip.Prefix]bool{}
	for i, b := range ipBlocks {
		if b.p != b.p.Masked() {
			t.Errorf("%v is not a masked prefix", b.p)
		}
		if seen[b.p] {
			t.Errorf("%v listed twice", b.p)
		}
		seen[b.p] = true
		if i > 0 {
			prev := ipBlocks[i-1].p
			if c := prev.Addr().Compare(b.p.Addr()); c > 0 || c == 0 && prev.Bits() >= b.p.Bits() {
				t.Errorf("%v listed after %v", b.p, prev)
			}
		}
	}
	if !seen[netip.MustParsePrefix("0.0.0.0/0")] || !seen[netip.MustParsePrefix("::/0")] {
		t.Error("no default block for a family")
	}
}

func BenchmarkPublicIP(b *testing.B) {
	for b.Loop() {
		PublicIP("81.2.69.142")
		PublicIP("2a00:1450:4001:80b::200e")
	}
}
