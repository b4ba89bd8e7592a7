package locker

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// Mode is the shape of a lock.
type Mode string

// Lock modes.
const (
	// ModeExact lists every public address the role's lock mode admits.
	ModeExact Mode = "exact"
	// ModeAggregated lists covering prefixes (size fallback).
	ModeAggregated Mode = "aggregated"
	// ModeVPCEndpointsOnly denies every internet call and allows only
	// calls through VPC endpoints of the listed VPCs.
	ModeVPCEndpointsOnly Mode = "vpc-endpoints-only"
	// ModeDenyAll is lockpolicy.DenyAll.
	ModeDenyAll Mode = "deny-all"
	// ModeManagedDenyAll is the AWS managed policy AWSDenyAll attached to
	// the role, because the role's other inline policies leave no room for
	// even lockpolicy.DenyAll (see DenyAllPolicyARN).
	ModeManagedDenyAll Mode = "managed-deny-all"
)

// lockSpec is how a role is to be locked: its lock mode tag and the app's
// trust.
type lockSpec struct {
	tagged  bool            // the role has the mode tag
	tag     string          // the tag's value as read
	mode    lockpolicy.Mode // the mode; "" when untagged or unknown
	unknown bool            // tagged with a value that is not a mode
	trust   lockpolicy.Trust
}

// admitsOwnAddresses reports whether the spec's locks list the instances'
// own public addresses: untagged roles (the locker's behaviour before lock
// modes), instance-public-ip, elastic-ip and nat-egress.
func (s lockSpec) admitsOwnAddresses() bool {
	return !s.unknown && s.mode != lockpolicy.ModeVPCEndpointsOnly
}

// lockInput is what a lock is computed from.
type lockInput struct {
	live  int            // pending, running or stopping instances
	total int            // all instances
	addrs []netip.Prefix // public addresses the mode admits for the live instances
	vpcs  []string       // VPCs of all instances
	// public counts the live instances' own public addresses, admitted or
	// not (for the reasons).
	public int
}

// input reduces a role's instances to the lock's inputs for spec: the live
// instances' own public addresses unless the mode is vpc-endpoints-only
// (or unknown), plus their NAT gateways' addresses in nat-egress mode.
func (s roleState) input(spec lockSpec) lockInput {
	var in lockInput
	for _, i := range s.instances {
		in.total++
		if i.Live() {
			in.live++
			in.public += len(i.Addresses)
			if spec.admitsOwnAddresses() {
				in.addrs = append(in.addrs, i.Addresses...)
			}
			if spec.mode == lockpolicy.ModeNATEgress {
				in.addrs = append(in.addrs, i.Egress...)
			}
		}
		if lockpolicy.IsVPCID(i.VPC) {
			in.vpcs = append(in.vpcs, i.VPC)
		}
	}
	in.addrs = uniquePrefixes(in.addrs)
	slices.Sort(in.vpcs)
	in.vpcs = slices.Compact(in.vpcs)
	return in
}

// equal reports whether two inputs give the same lock.
func (a lockInput) equal(b lockInput) bool {
	return (a.live > 0) == (b.live > 0) && (a.total > 0) == (b.total > 0) &&
		slices.Equal(a.addrs, b.addrs) && slices.Equal(a.vpcs, b.vpcs)
}

// candidate is one lock the locker may write, finest first.
type candidate struct {
	mode      Mode
	fallback  bool
	reason    string
	sourceIPs []string
	vpcs      []string
	doc       []byte
	size      int
}

// modeNames lists the lock modes for messages.
func modeNames() string {
	names := make([]string, len(lockpolicy.Modes))
	for i, m := range lockpolicy.Modes {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}

// plan lists the locks for in, finest first: the exact lock, then (size
// fallback) each aggregation level that shortens the list, then VPC
// endpoints only, then deny-all. Every later candidate denies at least what
// the earlier ones deny. lastVPCs are the VPCs of the current lock, used
// when the role has no instance at all. Every candidate but the deny-all
// admits spec.trust as well.
//
// A role whose mode tag is not a mode gets the VPC-endpoints-only lock (or
// the deny-all), as a fallback: never unlocked, never wider than any mode
// would have it.
func plan(in lockInput, lastVPCs []string, spec lockSpec) ([]candidate, error) {
	var out []candidate
	add := func(c candidate) error {
		var doc lockpolicy.Document
		if c.mode == ModeDenyAll {
			doc = lockpolicy.DenyAll()
		} else {
			d, err := lockpolicy.Render(lockpolicy.Lock{SourceIPs: c.sourceIPs, VPCs: c.vpcs, Trust: spec.trust}, lockpolicy.Options{})
			if err != nil {
				return fmt.Errorf("locker: render %s lock: %w", c.mode, err)
			}
			doc = d
		}
		b, err := doc.JSON()
		if err != nil {
			return err
		}
		c.doc, c.size = b, doc.Size()
		if c.sourceIPs == nil {
			c.sourceIPs = []string{}
		}
		if c.vpcs == nil {
			c.vpcs = []string{}
		}
		out = append(out, c)
		return nil
	}
	denyAll := func(fallback bool, reason string) error {
		return add(candidate{mode: ModeDenyAll, fallback: fallback, reason: reason})
	}
	const tooLarge = "the finer locks exceed the inline policy size quota"

	if spec.unknown {
		reason := fmt.Sprintf("the role's %s tag is %q, which is not a lock mode (want one of %s)",
			contract.LockModeTagKey, spec.tag, modeNames())
		vpcs := in.vpcs
		if in.total == 0 {
			vpcs = lastVPCs
		}
		if len(vpcs) > 0 {
			if err := add(candidate{mode: ModeVPCEndpointsOnly, fallback: true, vpcs: vpcs,
				reason: reason + ": VPC endpoints only, the narrowest lock that still admits the instances' endpoint calls"}); err != nil {
				return nil, err
			}
			return out, denyAll(true, reason+", and "+tooLarge)
		}
		return out, denyAll(true, reason+", and no VPC is known: deny every call not made by an AWS service")
	}

	switch {
	case len(in.addrs) > 0:
		prev := in.addrs
		if err := add(candidate{mode: ModeExact, sourceIPs: prefixStrings(prev), vpcs: in.vpcs}); err != nil {
			return nil, err
		}
		for _, lvl := range AggregationLevels {
			agg := Aggregate(in.addrs, lvl)
			if slices.Equal(agg, prev) {
				continue
			}
			prev = agg
			reason := fmt.Sprintf("%d addresses do not fit the inline policy size quota: IPv4 merged into /%d and IPv6 into /%d networks where they share one",
				len(in.addrs), lvl.IPv4Bits, lvl.IPv6Bits)
			if err := add(candidate{mode: ModeAggregated, fallback: true, reason: reason, sourceIPs: prefixStrings(agg), vpcs: in.vpcs}); err != nil {
				return nil, err
			}
		}
		if len(in.vpcs) > 0 {
			if err := add(candidate{mode: ModeVPCEndpointsOnly, fallback: true, vpcs: in.vpcs,
				reason: "even /16 (IPv4) and /48 (IPv6) networks exceed the inline policy size quota: VPC endpoints only"}); err != nil {
				return nil, err
			}
		}
		return out, denyAll(true, tooLarge)
	case in.live > 0 && len(in.vpcs) > 0:
		reason := "the running instances have no public address: VPC endpoints only"
		switch {
		case spec.mode == lockpolicy.ModeVPCEndpointsOnly && in.public > 0:
			reason = fmt.Sprintf("lock mode %s: VPC endpoints only, although the running instances have %d public addresses", spec.mode, in.public)
		case spec.mode == lockpolicy.ModeVPCEndpointsOnly:
			reason = fmt.Sprintf("lock mode %s: VPC endpoints only", spec.mode)
		case spec.mode == lockpolicy.ModeNATEgress:
			reason = fmt.Sprintf("lock mode %s, but the running instances have no public address and no NAT gateway on their route to the internet: VPC endpoints only", spec.mode)
		}
		if err := add(candidate{mode: ModeVPCEndpointsOnly, vpcs: in.vpcs, reason: reason}); err != nil {
			return nil, err
		}
		return out, denyAll(true, tooLarge)
	case in.live == 0 && len(in.vpcs) > 0:
		if err := add(candidate{mode: ModeVPCEndpointsOnly, vpcs: in.vpcs,
			reason: "no running instance: VPC endpoints of the stopped instances' VPCs only"}); err != nil {
			return nil, err
		}
		return out, denyAll(true, tooLarge)
	case in.total == 0 && len(lastVPCs) > 0:
		if err := add(candidate{mode: ModeVPCEndpointsOnly, vpcs: lastVPCs,
			reason: "no instance: VPC endpoints of the VPCs of the current lock only"}); err != nil {
			return nil, err
		}
		return out, denyAll(true, tooLarge)
	default:
		return out, denyAll(false, "no instance and no known VPC: deny every call not made by an AWS service")
	}
}
