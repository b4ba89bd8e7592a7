package locker

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// Mode is the shape of a lock.
type Mode string

// Lock modes.
const (
	// ModeExact lists every public address of the role's live instances.
	ModeExact Mode = "exact"
	// ModeAggregated lists covering prefixes (size fallback).
	ModeAggregated Mode = "aggregated"
	// ModeVPCEndpointsOnly denies every internet call and allows only
	// calls through VPC endpoints of the listed VPCs.
	ModeVPCEndpointsOnly Mode = "vpc-endpoints-only"
	// ModeDenyAll is lockpolicy.DenyAll.
	ModeDenyAll Mode = "deny-all"
)

// lockInput is what a lock is computed from.
type lockInput struct {
	live  int            // pending, running or stopping instances
	total int            // all instances
	addrs []netip.Prefix // public addresses of the live instances
	vpcs  []string       // VPCs of all instances
}

// input reduces a role's instances to the lock's inputs.
func (s roleState) input() lockInput {
	var in lockInput
	for _, i := range s.instances {
		in.total++
		if i.Live() {
			in.live++
			in.addrs = append(in.addrs, i.Addresses...)
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

// plan lists the locks for in, finest first: the exact lock, then (size
// fallback) each aggregation level that shortens the list, then VPC
// endpoints only, then deny-all. Every later candidate denies at least what
// the earlier ones deny. lastVPCs are the VPCs of the current lock, used
// when the role has no instance at all.
func plan(in lockInput, lastVPCs []string) ([]candidate, error) {
	var out []candidate
	add := func(c candidate) error {
		var doc lockpolicy.Document
		if c.mode == ModeDenyAll {
			doc = lockpolicy.DenyAll()
		} else {
			d, err := lockpolicy.Render(lockpolicy.Lock{SourceIPs: c.sourceIPs, VPCs: c.vpcs}, lockpolicy.Options{})
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
		if err := add(candidate{mode: ModeVPCEndpointsOnly, vpcs: in.vpcs,
			reason: "the running instances have no public address: VPC endpoints only"}); err != nil {
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
