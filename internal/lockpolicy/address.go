package lockpolicy

import (
	"net/netip"
	"regexp"
)

// This file is the one place that decides what a VPC id looks like and
// which addresses are public. The lock, the deny-all fallback, the lockdown
// session policy, the locker, the detector and checkip all ask here.

// vpcIDPattern is the shape of a VPC id: "vpc-" and 8 (old style) or 17
// lowercase hex digits.
var vpcIDPattern = regexp.MustCompile(`^vpc-[0-9a-f]{8,17}$`)

// IsVPCID reports whether s is a VPC id: ^vpc-[0-9a-f]{8,17}$.
func IsVPCID(s string) bool { return vpcIDPattern.MatchString(s) }

// Address ranges that are not public but that netip has no predicate for.
var (
	sharedSpace = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598, carrier-grade NAT
	thisNetwork = netip.MustParsePrefix("0.0.0.0/8")     // RFC 1122 "this network"
	reserved4   = netip.MustParsePrefix("240.0.0.0/4")   // reserved, broadcast included
)

// NonPublicReason says why a is not a public internet address, i.e. an
// address that can never be a caller's aws:SourceIp (nor a workstation's
// public address), or returns "" if it is public: the unspecified,
// loopback, link-local, multicast and private addresses (RFC 1918 and the
// IPv6 unique-local range fc00::/7), the shared (carrier-grade NAT) address
// space 100.64.0.0/10, 0.0.0.0/8 ("this network"), the reserved range
// 240.0.0.0/4 (broadcast included), IPv4-mapped IPv6 addresses (AWS sees
// the IPv4 address) and zoned addresses. The documentation ranges
// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32 are
// deliberately public, because tests and documentation use them.
func NonPublicReason(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "not an address"
	case a.Zone() != "":
		return "a zoned address, which only makes sense on a local link"
	case a.Is4In6():
		return "an IPv4-mapped IPv6 address"
	case a.IsUnspecified():
		return "the unspecified address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	case a.IsMulticast():
		return "a multicast address"
	case a.IsPrivate() && a.Is4():
		return "a private (RFC 1918) address"
	case a.IsPrivate():
		return "a unique local (fc00::/7) address, i.e. private"
	case sharedSpace.Contains(a):
		return "in the shared address space 100.64.0.0/10 (carrier-grade NAT), not your public address"
	case thisNetwork.Contains(a):
		return `in 0.0.0.0/8 ("this network")`
	case reserved4.Contains(a):
		return "in the reserved range 240.0.0.0/4"
	}
	return ""
}

// IsPublic reports whether a is a public internet address (see
// NonPublicReason).
func IsPublic(a netip.Addr) bool { return NonPublicReason(a) == "" }

// IsPublicPrefix reports whether p is a valid prefix that a lock may list:
// not /0, and its network address public (see NonPublicReason).
func IsPublicPrefix(p netip.Prefix) bool {
	return p.IsValid() && p.Bits() > 0 && IsPublic(p.Addr())
}

// IsPrivateNetwork reports whether a only means something inside a private
// network: RFC 1918, the IPv6 unique-local range, the shared address space
// 100.64.0.0/10 (RFC 6598), loopback and link-local addresses. The detector
// uses it to tell a caller's private address (seen through a VPC endpoint)
// from a public one; unlike !IsPublic it leaves out addresses that are
// neither public nor private (unspecified, multicast, reserved).
func IsPrivateNetwork(a netip.Addr) bool {
	return a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || sharedSpace.Contains(a)
}

// PublicPrefix parses an address (as a single-address prefix, /32 or /128)
// or a CIDR (masked) and reports whether it is public (IsPublicPrefix).
// Malformed values are not.
func PublicPrefix(s string) (netip.Prefix, bool) {
	var p netip.Prefix
	if pp, err := netip.ParsePrefix(s); err == nil {
		p = pp.Masked()
	} else if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		p = netip.PrefixFrom(a, a.BitLen())
	} else {
		return netip.Prefix{}, false
	}
	if !IsPublicPrefix(p) {
		return netip.Prefix{}, false
	}
	return p, true
}
