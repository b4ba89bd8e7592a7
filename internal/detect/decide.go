package detect

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// VerdictKind is the outcome of checking one instance-session record.
type VerdictKind uint8

// Verdict kinds. BadSource and InstanceMissing are also the alert types.
const (
	// OK: the call came from where the instance's traffic comes from.
	OK VerdictKind = iota
	// BadSource: the credentials were used from an address the instance
	// does not have.
	BadSource
	// InstanceMissing: the instance is unknown to the inventory even after
	// a refresh (terminated long ago, or never existed). Other accounts'
	// instance sessions never get here (the Processor skips them), and a
	// MultiRegionInventory reports an instance missing only when no
	// enabled region knows it.
	InstanceMissing
	// AccountNotCovered: the record was made with the credentials of
	// another account of the organisation whose member role the detector
	// may not assume (organisation mode, see "Organisation mode"): nothing
	// could be judged. Decide never returns it.
	AccountNotCovered
)

// String returns the alert type name ("OK", "BadSource", "InstanceMissing",
// "AccountNotCovered").
func (k VerdictKind) String() string {
	switch k {
	case OK:
		return "OK"
	case BadSource:
		return "BadSource"
	case InstanceMissing:
		return "InstanceMissing"
	case AccountNotCovered:
		return "AccountNotCovered"
	default:
		return fmt.Sprintf("VerdictKind(%d)", uint8(k))
	}
}

// Severity grades an alert.
type Severity string

// Severities.
const (
	SeverityHigh   Severity = "HIGH"
	SeverityMedium Severity = "MEDIUM"
)

// Verdict is the decision about one record.
type Verdict struct {
	Kind     VerdictKind
	Severity Severity   // "" for OK
	Reason   string     // why, in a sentence fragment suitable for logs and alerts
	SourceIP netip.Addr // the parsed sourceIPAddress; invalid if it is not an address
}

// Policy holds the deployment-specific exceptions of Decide. The zero value
// is the strict default.
type Policy struct {
	// TrustedSourcePrefixes are addresses any instance may call from, for
	// egress that the per-instance inventory cannot see: a centralised
	// egress VPC's NAT gateways reached over Transit Gateway, a proxy fleet.
	TrustedSourcePrefixes []netip.Prefix
	// TrustedVPCEndpoints are VPC endpoint ids accepted for every instance
	// in addition to the endpoints of its own VPC: centralised interface
	// endpoints in a shared-services VPC (the app's shared VPC endpoints,
	// lockpolicy.Trust.SharedVPCEndpoints). A call through one is OK only
	// from the instance's own private address, exactly what the lock admits
	// there (aws:VpcSourceIp equal to aws:Ec2InstanceSourcePrivateIPv4; see
	// Instance.IsLockedPrivateIP): a shared endpoint is reachable from many
	// VPCs, so the endpoint alone does not pin the call to the instance.
	TrustedVPCEndpoints []string
	// RequireInstancePrivateIP makes calls through the instance's VPC
	// endpoint acceptable only from the instance's own private addresses
	// (Instance.PrivateIPs and PrivatePrefixes) instead of from any private
	// address. It catches credentials replayed from another machine in the
	// same VPC, at the price of false alarms when the inventory misses
	// addresses (containers with their own network interfaces).
	RequireInstancePrivateIP bool
}

// DefaultPolicy is the Policy used by Decide.
var DefaultPolicy Policy

// Decide checks one instance-session record against the instance it claims
// to come from, using DefaultPolicy. See Policy.Decide.
func Decide(rec *cloudtrail.Record, inst Instance, found bool) Verdict {
	return DefaultPolicy.Decide(rec, inst, found)
}

// Decide checks one instance-session record against the instance it claims
// to come from (inst, if found).
//
// The call is OK when sourceIPAddress is one of the instance's public
// addresses (public IPv4, Elastic IPs, IPv6, delegated IPv6 prefixes:
// exactly what the instance role's lock admits), one of the public addresses
// of the NAT gateways in its VPC, or in TrustedSourcePrefixes.
//
// It is also OK when it came through a VPC endpoint of the instance's own
// VPC (vpcEndpointId is in Instance.VPCEndpointIDs) from a private
// address. Through an endpoint CloudTrail records the caller's private
// address, which is meaningless outside its VPC; the endpoint id is what
// pins the call to a network, and endpoint ids are globally unique, so
// vpcEndpointAccountId adds nothing to the check (it only grades the
// severity below). "Private" means RFC 1918, RFC 6598, IPv6 ULA, or one of
// the instance's own private addresses (VPCs may use public ranges
// privately).
//
// Through a trusted shared endpoint (TrustedVPCEndpoints), which lives in
// another VPC and serves many, it is OK only from the instance's own
// private address (Instance.IsLockedPrivateIP), as the lock admits.
//
// Anything else is BadSource:
//
//   - HIGH when the source is a public address, or the call came through a
//     VPC endpoint of another VPC whose owner is not the instance's account
//     (the classic replay from an attacker's own VPC), or whose owner is
//     not recorded;
//   - MEDIUM when the call came through an endpoint of another VPC of the
//     same account, from a private address without an endpoint, from a
//     private address that is not the instance's through a shared endpoint
//     (or through its own VPC's with RequireInstancePrivateIP), or when the
//     source is not an address at all.
//
// When the instance is unknown the verdict is InstanceMissing with
// severity MEDIUM: credentials of a terminated instance remain valid for
// hours, but CloudTrail's delivery delay also lets legitimate last calls
// of a just-terminated instance arrive after it is gone.
func (p *Policy) Decide(rec *cloudtrail.Record, inst Instance, found bool) Verdict {
	src, err := netip.ParseAddr(rec.SourceIPAddress)
	if err == nil {
		src = src.Unmap()
	}
	v := Verdict{SourceIP: src}
	if !found {
		v.Kind, v.Severity = InstanceMissing, SeverityMedium
		v.Reason = "the instance is not in the EC2 inventory"
		return v
	}
	if src.IsValid() {
		switch {
		case inst.HasPublicIP(src):
			v.Reason = "source is a public address of the instance"
			return v
		case slices.Contains(inst.NATIPs, src):
			v.Reason = "source is a NAT gateway of the instance's VPC"
			return v
		case p.trustedSource(src):
			v.Reason = "source is in a trusted prefix"
			return v
		}
	}
	private := src.IsValid() && (lockpolicy.IsPrivateNetwork(src) || inst.HasPrivateIP(src))
	if ep := rec.VPCEndpointID; ep != "" {
		own := slices.Contains(inst.VPCEndpointIDs, ep)
		shared := !own && slices.Contains(p.TrustedVPCEndpoints, ep)
		switch {
		case own && private && (!p.RequireInstancePrivateIP || inst.HasPrivateIP(src)):
			v.Reason = "call came through VPC endpoint " + ep + " of the instance's VPC"
			return v
		case own && private:
			v.Kind, v.Severity = BadSource, SeverityMedium
			v.Reason = "private source " + src.String() + " through the instance VPC's endpoint " + ep + " is not an address of the instance"
			return v
		case shared && private && inst.IsLockedPrivateIP(src):
			v.Reason = "call came through the trusted shared VPC endpoint " + ep + " from the instance's private address"
			return v
		case shared && private:
			v.Kind, v.Severity = BadSource, SeverityMedium
			v.Reason = "private source " + src.String() + " through the trusted shared VPC endpoint " + ep +
				" is not the instance's private address (the only one its lock admits there)"
			return v
		case !own && !shared:
			v.Kind, v.Severity = BadSource, SeverityHigh
			owner := rec.VPCEndpointAccountID
			if owner != "" && owner == accountOf(rec) {
				v.Severity = SeverityMedium
			}
			v.Reason = "call came through VPC endpoint " + ep
			if owner != "" {
				v.Reason += " (owned by account " + owner + ")"
			}
			v.Reason += ", which is not in the instance's VPC " + inst.VpcID
			return v
		}
		// The instance VPC's or a shared endpoint with a public or
		// unparsable source: judge the source address alone.
	}
	v.Kind = BadSource
	switch {
	case !src.IsValid():
		v.Severity = SeverityMedium
		v.Reason = fmt.Sprintf("source %q is not an IP address", rec.SourceIPAddress)
	case private:
		v.Severity = SeverityMedium
		v.Reason = "private source " + src.String() + " did not come through a VPC endpoint of the instance's VPC"
	default:
		v.Severity = SeverityHigh
		v.Reason = "source " + src.String() + " is not an address of the instance or of its VPC's NAT gateways"
	}
	return v
}

func (p *Policy) trustedSource(a netip.Addr) bool {
	for _, pfx := range p.TrustedSourcePrefixes {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// accountOf returns the account the credentials belong to.
func accountOf(rec *cloudtrail.Record) string {
	if a := rec.UserIdentity.AccountID; a != "" {
		return a
	}
	return rec.RecipientAccountID
}
