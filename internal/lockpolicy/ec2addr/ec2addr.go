// Package ec2addr reads an EC2 instance's addresses out of a
// DescribeInstances record. It is the one place that says what an
// instance's addresses are, so that the locker (which lists them in the
// instance role's lock) and the detector (which accepts calls from them)
// agree: the detector accepts a call from exactly the public addresses a
// lock admits.
//
// It is a package of its own, not part of lockpolicy, so that the CDK
// construct, which renders locks through lockpolicy, does not link the EC2
// API types.
package ec2addr

import (
	"net/netip"
	"slices"

	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// Addresses is what a DescribeInstances record says about an instance's
// network position. Lists are in the order EC2 reports them, without
// duplicates.
type Addresses struct {
	// VPC is the instance's VPC id, taken from the first network interface
	// that has one when the instance record has none.
	VPC string
	// Public are the public addresses the instance calls AWS from over the
	// internet, collected from every place EC2 reports them:
	//
	//   - PublicIpAddress (the auto-assigned public IPv4 or the Elastic IP
	//     of the primary interface) and Ipv6Address,
	//   - Association.PublicIp of every network interface and of every
	//     private IPv4 address (Elastic IPs on secondary interfaces and
	//     secondary addresses),
	//   - every IPv6 address of every network interface.
	//
	// Addresses that can never appear as aws:SourceIp (see
	// lockpolicy.IsPublic), IPv4-mapped and malformed values are dropped.
	// Carrier (Wavelength) and customer-owned (Outposts) addresses are not
	// collected: a lock does not list them, so AWS denies the instance's
	// calls from them, and the detector must not accept them either.
	Public []netip.Addr
	// PublicPrefixes are the IPv6 prefixes delegated to the instance's
	// network interfaces that are public (lockpolicy.IsPublicPrefix): the
	// instance may call from any address inside them.
	PublicPrefixes []netip.Prefix
	// Private are the private IPv4 addresses of the instance and of every
	// network interface, primary and secondary (unfiltered: VPCs may use
	// public ranges privately).
	Private []netip.Addr
	// DelegatedPrefixes are the IPv4 and IPv6 prefixes delegated to the
	// instance's network interfaces (EKS prefix delegation), masked. Seen
	// through a VPC endpoint, their addresses are the instance's.
	DelegatedPrefixes []netip.Prefix
}

// Of reads the addresses of in. It ignores the instance's state: a stopped
// instance keeps its Elastic IPs, and whether they count is the caller's
// decision.
func Of(in ec2types.Instance) Addresses {
	out := Addresses{VPC: deref(in.VpcId)}
	out.addPublic(in.PublicIpAddress)
	out.addPublic(in.Ipv6Address)
	out.addPrivate(in.PrivateIpAddress)
	for _, ni := range in.NetworkInterfaces {
		if out.VPC == "" {
			out.VPC = deref(ni.VpcId)
		}
		if ni.Association != nil {
			out.addPublic(ni.Association.PublicIp)
		}
		out.addPrivate(ni.PrivateIpAddress)
		for _, pa := range ni.PrivateIpAddresses {
			out.addPrivate(pa.PrivateIpAddress)
			if pa.Association != nil {
				out.addPublic(pa.Association.PublicIp)
			}
		}
		for _, a6 := range ni.Ipv6Addresses {
			out.addPublic(a6.Ipv6Address)
		}
		for _, p4 := range ni.Ipv4Prefixes {
			out.addDelegated(p4.Ipv4Prefix, false)
		}
		for _, p6 := range ni.Ipv6Prefixes {
			out.addDelegated(p6.Ipv6Prefix, true)
		}
	}
	return out
}

// SourcePrefixes returns the public addresses (as /32 or /128 prefixes) and
// the public delegated prefixes: what a lock lists for the instance, in the
// order of Of.
func (a Addresses) SourcePrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(a.Public)+len(a.PublicPrefixes))
	for _, ip := range a.Public {
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return append(out, a.PublicPrefixes...)
}

// parse parses an address; ok is false for a missing, malformed or zoned
// one.
func parse(s *string) (netip.Addr, bool) {
	if s == nil || *s == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(*s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

func (a *Addresses) addPublic(s *string) {
	if ip, ok := parse(s); ok && lockpolicy.IsPublic(ip) && !slices.Contains(a.Public, ip) {
		a.Public = append(a.Public, ip)
	}
}

func (a *Addresses) addPrivate(s *string) {
	if ip, ok := parse(s); ok && !slices.Contains(a.Private, ip.Unmap()) {
		a.Private = append(a.Private, ip.Unmap())
	}
}

func (a *Addresses) addDelegated(s *string, ipv6 bool) {
	if s == nil {
		return
	}
	p, err := netip.ParsePrefix(*s)
	if err != nil {
		return
	}
	p = p.Masked()
	if !slices.Contains(a.DelegatedPrefixes, p) {
		a.DelegatedPrefixes = append(a.DelegatedPrefixes, p)
	}
	if ipv6 && p.Addr().Is6() && lockpolicy.IsPublicPrefix(p) && !slices.Contains(a.PublicPrefixes, p) {
		a.PublicPrefixes = append(a.PublicPrefixes, p)
	}
}

// deref returns *s, or "" for nil.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
