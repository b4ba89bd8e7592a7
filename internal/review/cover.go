package review

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// u128 is an address as a 128-bit number (IPv4 addresses in the low 32 bits).
type u128 struct{ hi, lo uint64 }

// less orders u128 values.
func (a u128) less(b u128) bool { return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo) }

// next returns a+1 and false when it overflows max.
func (a u128) next(max u128) (u128, bool) {
	if a == max {
		return a, false
	}
	if a.lo == ^uint64(0) {
		return u128{a.hi + 1, 0}, true
	}
	return u128{a.hi, a.lo + 1}, true
}

// span is an inclusive address range.
type span struct{ first, last u128 }

// spanOf returns the addresses of a prefix.
func spanOf(p netip.Prefix) span {
	p = p.Masked()
	b := p.Addr().As16()
	var a u128
	host := p.Addr().BitLen() - p.Bits()
	if p.Addr().Is4() {
		a = u128{0, uint64(b[12])<<24 | uint64(b[13])<<16 | uint64(b[14])<<8 | uint64(b[15])}
	} else {
		for i := range 8 {
			a.hi = a.hi<<8 | uint64(b[i])
			a.lo = a.lo<<8 | uint64(b[8+i])
		}
	}
	last := a
	switch {
	case host >= 128:
		last = u128{^uint64(0), ^uint64(0)}
	case host > 64:
		last.lo = ^uint64(0)
		last.hi |= (uint64(1) << (host - 64)) - 1
	case host == 64:
		last.lo = ^uint64(0)
	case host > 0:
		last.lo |= (uint64(1) << host) - 1
	}
	return span{a, last}
}

// coversFamily reports whether the union of the prefixes (all of one family, 32 or 128 bits)
// is every address of that family: a sweep over the ranges sorted by their first address.
func coversFamily(prefixes []netip.Prefix, bits int) bool {
	if len(prefixes) == 0 {
		return false
	}
	top := u128{^uint64(0), ^uint64(0)}
	if bits == 32 {
		top = u128{0, 1<<32 - 1}
	}
	spans := make([]span, len(prefixes))
	for i, p := range prefixes {
		spans[i] = spanOf(p)
	}
	slices.SortFunc(spans, func(a, b span) int {
		if a.first.less(b.first) {
			return -1
		}
		if b.first.less(a.first) {
			return 1
		}
		return 0
	})
	var want u128 // the first address not yet covered
	for _, s := range spans {
		if want.less(s.first) {
			return false // a gap before this range
		}
		if !s.last.less(want) {
			n, ok := s.last.next(top)
			if !ok {
				return true // reached the last address
			}
			want = n
		}
	}
	return false
}

// coverFindings finds security groups whose rules, each narrower than the whole internet,
// together admit SSH or RDP from every IPv4 or every IPv6 address (0.0.0.0/1 + 128.0.0.0/1,
// or any set of prefixes that covers the address space) as deployed by default, and records a
// DEF-SG-1 finding on the group. It returns the rules that take part, whose wide ranges need no
// separate DEF-SG-2.
func (z *analyzer) coverFindings(all []*rule, byRule map[*rule][]exposure) map[*rule]bool {
	inUnion := map[*rule]bool{}
	bySG := map[*resource][]exposure{}
	for _, r := range all {
		if r.sg == nil {
			continue
		}
		for _, x := range byRule[r] {
			if x.isDefault() {
				bySG[r.sg] = append(bySG[r.sg], x)
			}
		}
	}
	for _, sg := range z.byType[typeSG] {
		xs := bySG[sg]
		for _, fam := range []struct {
			name string
			bits int
		}{{"IPv4", 32}, {"IPv6", 128}} {
			var ports []string
			var members []exposure
			for _, port := range []struct {
				n    int
				name string
			}{{portSSH, "SSH (tcp 22)"}, {portRDP, "RDP (tcp 3389)"}} {
				var prefixes []netip.Prefix
				var these []exposure
				open := false
				for _, x := range xs {
					if x.prefix.Addr().BitLen() != fam.bits || !x.p.covers(port.n) {
						continue
					}
					if x.prefix.Bits() == 0 {
						open = true // reported on its own rule
					}
					prefixes = append(prefixes, x.prefix)
					these = append(these, x)
				}
				if !open && coversFamily(prefixes, fam.bits) {
					ports = append(ports, port.name)
					members = append(members, these...)
				}
			}
			if len(ports) == 0 {
				continue
			}
			if !slices.ContainsFunc(members, func(x exposure) bool { return !x.p.all }) {
				ports = []string{"every port (SSH and RDP included)"}
			}
			slices.SortStableFunc(members, func(a, b exposure) int {
				return cmp.Or(a.prefix.Addr().Compare(b.prefix.Addr()), cmp.Compare(a.prefix.Bits(), b.prefix.Bits()))
			})
			var srcs, rules []string
			var subjects []*resource
			for _, x := range members {
				inUnion[x.r] = true
				srcs = append(srcs, "`"+x.cidr+"`")
				rules = append(rules, "`"+x.r.origin.id+"`")
				subjects = append(subjects, x.r.origin)
			}
			srcs = slices.Compact(srcs)
			slices.Sort(rules)
			rules = slices.Compact(rules)
			reach, reachText := z.reach(sg)
			z.addFinding(RuleOpenIngress, sg, append(reach, subjects...),
				"security group `%s` allows %s from %s (declared by %s), which together cover the whole %s internet%s: "+
					"restrict the sources to the addresses that need them (a single /32 or /128 per workstation), or reach the "+
					"instances through SSM Session Manager instead of opening the port.",
				display(sg), strings.Join(ports, " and "), strings.Join(srcs, ", "), strings.Join(rules, ", "), fam.name, reachText)
		}
	}
	return inUnion
}
