package mapping

import "net/netip"

// PublicIP reports whether s is a public IP address: one Castle can place
// on the internet. Castle requires a valid public IP whenever an event
// carries a context.
//
// Public means globally reachable by IANA's registries: the most specific
// block of ipBlocks that holds the address decides. IANA's special-purpose
// registries (RFC 6890 and their updates) mark each block "globally
// reachable" true or false, and for a few "N/A" (6to4, Teredo, the
// deprecated 6to4 relay anycast block), which counts as false here. To
// them the table adds the address-space facts the special-purpose
// registries leave out: IPv4 and IPv6 multicast, IPv6's deprecated
// site-local block, and that in IPv6 only 2000::/3 (global unicast) is
// allocated for public use. An IPv4-mapped IPv6 address (::ffff:a.b.c.d)
// is judged as the IPv4 address it holds; an address with a zone is not
// public.
func PublicIP(s string) bool {
	_, ok := publicAddr(s)
	return ok
}

// publicAddr is PublicIP, also returning the address (unmapped).
func publicAddr(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	fam, first := 1, a.As16()[0]
	if a.Is4() {
		fam, first = 0, a.As4()[0]
	}
	public, bits := false, -1
	for _, i := range ipIndex[fam][first] {
		b := &ipBlocks[i]
		if b.p.Bits() > bits && b.p.Contains(a) {
			public, bits = b.public, b.p.Bits()
		}
	}
	return a, public
}

type ipBlock struct {
	p      netip.Prefix
	public bool
}

// ipBlocks: IANA's IPv4 and IPv6 Special-Purpose Address Registries (as of
// 2025), each block with its "globally reachable" flag, plus the address
// space rules named in PublicIP's doc. Sorted by family, then address.
var ipBlocks = [...]ipBlock{
	{pfx("0.0.0.0/0"), true},           // IPv4 unicast, unless a block below says otherwise
	{pfx("0.0.0.0/8"), false},          // "this network" (RFC 791)
	{pfx("0.0.0.0/32"), false},         // "this host on this network" (RFC 1122)
	{pfx("10.0.0.0/8"), false},         // private use (RFC 1918)
	{pfx("100.64.0.0/10"), false},      // shared address space, carrier-grade NAT (RFC 6598)
	{pfx("127.0.0.0/8"), false},        // loopback (RFC 1122)
	{pfx("169.254.0.0/16"), false},     // link local (RFC 3927)
	{pfx("172.16.0.0/12"), false},      // private use (RFC 1918)
	{pfx("192.0.0.0/24"), false},       // IETF protocol assignments (RFC 6890)
	{pfx("192.0.0.0/29"), false},       // IPv4 service continuity prefix (RFC 7335)
	{pfx("192.0.0.8/32"), false},       // IPv4 dummy address (RFC 7600)
	{pfx("192.0.0.9/32"), true},        // Port Control Protocol anycast (RFC 7723)
	{pfx("192.0.0.10/32"), true},       // TURN anycast (RFC 8155)
	{pfx("192.0.0.170/31"), false},     // NAT64/DNS64 discovery (RFC 8880)
	{pfx("192.0.2.0/24"), false},       // documentation, TEST-NET-1 (RFC 5737)
	{pfx("192.31.196.0/24"), true},     // AS112-v4 (RFC 7535)
	{pfx("192.52.193.0/24"), true},     // AMT (RFC 7450)
	{pfx("192.88.99.0/24"), false},     // deprecated 6to4 relay anycast (RFC 7526): N/A
	{pfx("192.88.99.2/32"), true},      // 6a44 relay anycast (RFC 6751)
	{pfx("192.168.0.0/16"), false},     // private use (RFC 1918)
	{pfx("192.175.48.0/24"), true},     // direct delegation AS112 service (RFC 7534)
	{pfx("198.18.0.0/15"), false},      // benchmarking (RFC 2544)
	{pfx("198.51.100.0/24"), false},    // documentation, TEST-NET-2 (RFC 5737)
	{pfx("203.0.113.0/24"), false},     // documentation, TEST-NET-3 (RFC 5737)
	{pfx("224.0.0.0/4"), false},        // multicast (IPv4 multicast address space registry)
	{pfx("240.0.0.0/4"), false},        // reserved (RFC 1112)
	{pfx("255.255.255.255/32"), false}, // limited broadcast (RFC 8190)
	{pfx("::/0"), false},               // IPv6 space not allocated for global unicast
	{pfx("::/128"), false},             // unspecified (RFC 4291)
	{pfx("::1/128"), false},            // loopback (RFC 4291)
	{pfx("::ffff:0:0/96"), false},      // IPv4-mapped (RFC 4291): unmapped before the lookup
	{pfx("64:ff9b::/96"), true},        // IPv4/IPv6 translation (RFC 6052)
	{pfx("64:ff9b:1::/48"), false},     // local-use IPv4/IPv6 translation (RFC 8215)
	{pfx("100::/64"), false},           // discard-only (RFC 6666)
	{pfx("100:0:0:1::/64"), false},     // dummy prefix (RFC 9780)
	{pfx("2000::/3"), true},            // global unicast (IPv6 address space registry)
	{pfx("2001::/23"), false},          // IETF protocol assignments (RFC 2928)
	{pfx("2001::/32"), false},          // Teredo (RFC 4380): N/A
	{pfx("2001:1::1/128"), true},       // Port Control Protocol anycast (RFC 7723)
	{pfx("2001:1::2/128"), true},       // TURN anycast (RFC 8155)
	{pfx("2001:1::3/128"), true},       // DNS-SD service registration anycast (RFC 9665)
	{pfx("2001:2::/48"), false},        // benchmarking (RFC 5180)
	{pfx("2001:3::/32"), true},         // AMT (RFC 7450)
	{pfx("2001:4:112::/48"), true},     // AS112-v6 (RFC 7535)
	{pfx("2001:10::/28"), false},       // deprecated ORCHID (RFC 4843)
	{pfx("2001:20::/28"), true},        // ORCHIDv2 (RFC 7343)
	{pfx("2001:30::/28"), true},        // drone remote ID entity tags (RFC 9374)
	{pfx("2001:db8::/32"), false},      // documentation (RFC 3849)
	{pfx("2002::/16"), false},          // 6to4 (RFC 3056): N/A
	{pfx("2620:4f:8000::/48"), true},   // direct delegation AS112 service (RFC 7534)
	{pfx("3fff::/20"), false},          // documentation (RFC 9637)
	{pfx("5f00::/16"), false},          // segment routing SIDs (RFC 9602)
	{pfx("fc00::/7"), false},           // unique local (RFC 4193)
	{pfx("fe80::/10"), false},          // link-local unicast (RFC 4291)
	{pfx("fec0::/10"), false},          // deprecated site-local (RFC 3879)
	{pfx("ff00::/8"), false},           // multicast (RFC 4291)
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// ipIndex lists, per address family (0 IPv4, 1 IPv6) and first byte, the
// blocks that can hold an address starting with that byte.
var ipIndex = func() (idx [2][256][]uint8) {
	for i, b := range ipBlocks {
		fam, lo := 1, b.p.Addr().As16()[0]
		if b.p.Addr().Is4() {
			fam, lo = 0, b.p.Addr().As4()[0]
		}
		span := 1
		if bits := b.p.Bits(); bits < 8 {
			span = 1 << (8 - bits)
		}
		for f := int(lo); f < int(lo)+span; f++ {
			idx[fam][f] = append(idx[fam][f], uint8(i))
		}
	}
	return idx
}()
