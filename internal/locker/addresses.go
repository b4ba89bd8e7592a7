package locker

import (
	"net/netip"
	"slices"

	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/defenders-cdk/defenders/internal/lockpolicy/ec2addr"
)

// Instance is what the locker knows about one EC2 instance of a role.
type Instance struct {
	// ID is the instance id.
	ID string `json:"id"`
	// State is the instance state name (pending, running, stopping, stopped).
	State string `json:"state"`
	// VPC is the instance's VPC id.
	VPC string `json:"vpc,omitempty"`
	// Subnet is the instance's subnet id: its route table says how it
	// reaches the internet (nat-egress locks).
	Subnet string `json:"subnet,omitempty"`
	// Addresses are the public addresses the instance may call AWS from, as
	// single-address prefixes (/32, /128) or delegated IPv6 prefixes. Empty
	// for a stopped instance.
	Addresses []netip.Prefix `json:"addresses,omitempty"`
	// Egress are the public addresses of the NAT gateway on the instance's
	// route to the internet (0.0.0.0/0 of its subnet's route table, or of
	// its VPC's main route table): filled in for the live instances of a
	// role locked in lockpolicy.ModeNATEgress only.
	Egress []netip.Prefix `json:"egress,omitempty"`
}

// Live reports whether the instance can make calls now or very soon:
// pending, running or stopping. A stopped instance cannot.
func (i Instance) Live() bool {
	switch ec2types.InstanceStateName(i.State) {
	case ec2types.InstanceStateNamePending, ec2types.InstanceStateNameRunning, ec2types.InstanceStateNameStopping:
		return true
	}
	return false
}

// lockedStates are the instance states whose instances shape a lock.
// shutting-down and terminated instances are left out: their addresses are
// being released and may soon belong to someone else.
var lockedStates = []string{
	string(ec2types.InstanceStateNamePending),
	string(ec2types.InstanceStateNameRunning),
	string(ec2types.InstanceStateNameStopping),
	string(ec2types.InstanceStateNameStopped),
}

// InstanceFromEC2 extracts what the lock needs from an EC2 DescribeInstances
// record. The addresses of a live instance are ec2addr.Of's source
// prefixes (its public addresses from every place EC2 reports them, and its
// public delegated IPv6 prefixes: the reading the detector uses too, so
// that it accepts calls from exactly what the lock admits), sorted, without
// duplicates and without prefixes another one covers. A stopped,
// shutting-down or terminated instance contributes no address, only its
// VPC.
func InstanceFromEC2(in ec2types.Instance) Instance {
	addrs := ec2addr.Of(in)
	out := Instance{ID: deref(in.InstanceId), VPC: addrs.VPC, Subnet: deref(in.SubnetId)}
	if in.State != nil {
		out.State = string(in.State.Name)
	}
	if !out.Live() {
		return out
	}
	out.Addresses = uniquePrefixes(addrs.SourcePrefixes())
	return out
}

// deref returns *s, or "" for nil.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// comparePrefixes orders prefixes by family, address, then length.
func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// uniquePrefixes returns ps sorted, deduplicated, and without prefixes
// that another prefix of the list already covers.
func uniquePrefixes(ps []netip.Prefix) []netip.Prefix {
	out := slices.Clone(ps)
	slices.SortFunc(out, comparePrefixes)
	out = slices.Compact(out)
	kept := out[:0]
	for _, p := range out {
		covered := false
		for _, q := range kept {
			if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
				covered = true
				break
			}
		}
		if !covered {
			kept = append(kept, p)
		}
	}
	return kept
}

// Coarsest prefix lengths Aggregate will ever produce.
const (
	// MinIPv4Bits is the shortest IPv4 prefix a fallback lock lists.
	MinIPv4Bits = 16
	// MinIPv6Bits is the shortest IPv6 prefix a fallback lock lists.
	MinIPv6Bits = 48
)

// AggregationLevel is one step of the size fallback: the prefix lengths
// that addresses sharing a network are merged into.
type AggregationLevel struct {
	// IPv4Bits is the IPv4 prefix length (24, 20 or 16).
	IPv4Bits int
	// IPv6Bits is the IPv6 prefix length (64, 56 or 48).
	IPv6Bits int
}

// AggregationLevels are the steps of the size fallback, finest first. No
// level is coarser than /16 (IPv4) or /48 (IPv6).
var AggregationLevels = []AggregationLevel{{24, 64}, {20, 56}, {MinIPv4Bits, MinIPv6Bits}}

// Aggregate merges addresses into covering prefixes of level: every group
// of two or more entries that share a /IPv4Bits (or /IPv6Bits) network is
// replaced by that network; an entry alone in its network stays as it is,
// since widening it would not shorten the list. Entries already wider than
// the level are kept. The result is sorted and has no entry covered by
// another. Lengths are clamped to MinIPv4Bits and MinIPv6Bits.
func Aggregate(addrs []netip.Prefix, level AggregationLevel) []netip.Prefix {
	v4 := max(level.IPv4Bits, MinIPv4Bits)
	v6 := max(level.IPv6Bits, MinIPv6Bits)
	groups := make(map[netip.Prefix][]netip.Prefix)
	var order []netip.Prefix
	for _, p := range uniquePrefixes(addrs) {
		bits := v6
		if p.Addr().Is4() {
			bits = v4
		}
		if p.Bits() <= bits {
			groups[p] = append(groups[p], p)
			order = append(order, p)
			continue
		}
		net := netip.PrefixFrom(p.Addr(), bits).Masked()
		if _, ok := groups[net]; !ok {
			order = append(order, net)
		}
		groups[net] = append(groups[net], p)
	}
	out := make([]netip.Prefix, 0, len(order))
	for _, net := range order {
		members := groups[net]
		if len(members) == 1 {
			out = append(out, members[0])
		} else {
			out = append(out, net)
		}
	}
	return uniquePrefixes(out)
}

// prefixStrings renders prefixes in lockpolicy's canonical CIDR form.
func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
