package lockpolicy

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Mode is how a role's lock admits internet calls. The CDK construct writes
// it as the role tag contract.LockModeTagKey together with the lock; the
// locker reads the tag and renders the same mode; the review shows it.
// Every mode also admits the instance's own calls through VPC endpoints of
// its VPC (and the app's shared endpoints, Trust.SharedVPCEndpoints) and
// the app's trusted egress prefixes (Trust.EgressPrefixes).
type Mode string

// The lock modes. The values are the construct's Options.Mode values.
const (
	// ModeInstancePublicIP admits the instance's own public addresses.
	ModeInstancePublicIP Mode = "instance-public-ip"
	// ModeElasticIP admits the Elastic IPs associated with the instance (for
	// the locker the same reading as ModeInstancePublicIP: every public
	// address EC2 reports for the instance).
	ModeElasticIP Mode = "elastic-ip"
	// ModeNATEgress admits the public addresses of the NAT gateways on the
	// instance's route to the internet (and the instance's own public
	// addresses, e.g. its IPv6 addresses that leave through an egress-only
	// internet gateway).
	ModeNATEgress Mode = "nat-egress"
	// ModeVPCEndpointsOnly admits no public address at all.
	ModeVPCEndpointsOnly Mode = "vpc-endpoints-only"
)

// Modes lists every mode, in the order the documentation gives them.
var Modes = []Mode{ModeInstancePublicIP, ModeElasticIP, ModeNATEgress, ModeVPCEndpointsOnly}

// ParseMode returns the mode named s, or an error that names s and the
// modes there are.
func ParseMode(s string) (Mode, error) {
	for _, m := range Modes {
		if string(m) == s {
			return m, nil
		}
	}
	names := make([]string, len(Modes))
	for i, m := range Modes {
		names[i] = string(m)
	}
	return "", fmt.Errorf("lockpolicy: unknown lock mode %q: want one of %s", s, strings.Join(names, ", "))
}

// ErrInvalidVPCEndpoint means a VPC endpoint id is malformed.
var ErrInvalidVPCEndpoint = errors.New("invalid VPC endpoint id")

// vpceIDPattern is the shape of a VPC endpoint id: "vpce-" and 8 or 17
// lowercase hex digits.
var vpceIDPattern = regexp.MustCompile(`^vpce-[0-9a-f]{8,17}$`)

// IsVPCEndpointID reports whether s is a VPC endpoint id: ^vpce-[0-9a-f]{8,17}$.
func IsVPCEndpointID(s string) bool { return vpceIDPattern.MatchString(s) }

// Trust is what a whole app trusts besides each instance's own network
// position: the enterprise shapes of centralised egress and shared
// endpoints. It is configured once per app and rendered into every lock (by
// the construct and by the locker) and honoured by the detector.
//
// Both widen every lock they are added to, and both are honest about it:
// every host whose calls leave through a trusted egress prefix passes the
// internet-path check, and every host that can reach a shared endpoint
// passes the endpoint-VPC check (the host check, aws:VpcSourceIp equal to
// the instance's primary private IPv4, still applies there).
type Trust struct {
	// EgressPrefixes are public CIDRs (or addresses) that instances' calls
	// leave from although they are not the instance's: NAT gateways of a
	// central egress VPC reached over Transit Gateway, corporate proxies.
	// Validated like Lock.SourceIPs (public, no host bits) and at most
	// /16 (IPv4) or /32 (IPv6) wide.
	EgressPrefixes []string
	// SharedVPCEndpoints are the ids (vpce-...) of interface endpoints in a
	// shared-services VPC that instances of other VPCs call through. Such
	// a call carries the endpoint's VPC in aws:SourceVpc, not the
	// instance's, so the lock admits it by aws:SourceVpce. Endpoint ids, not
	// VPC ids, because they are what both IAM (aws:SourceVpce) and
	// CloudTrail (vpcEndpointId) carry: the detector can honour exactly
	// what the lock admits.
	SharedVPCEndpoints []string
}

// Empty reports whether t trusts nothing.
func (t Trust) Empty() bool { return len(t.EgressPrefixes) == 0 && len(t.SharedVPCEndpoints) == 0 }

// Validate checks every literal value of t (tokens, as told by isToken,
// pass unvalidated; a nil isToken treats everything as literal) and
// returns t canonicalised: prefixes in CIDR form, both lists sorted and
// deduplicated. The error names every bad value.
func (t Trust) Validate(isToken func(string) bool) (Trust, error) {
	if isToken == nil {
		isToken = func(string) bool { return false }
	}
	var errs []error
	var out Trust
	for _, raw := range t.EgressPrefixes {
		if isToken(raw) {
			out.EgressPrefixes = append(out.EgressPrefixes, raw)
			continue
		}
		p, err := canonicalSourceIP(raw)
		if err == nil {
			err = notTooWide(raw, p)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("trusted egress prefix: %w", err))
			continue
		}
		out.EgressPrefixes = append(out.EgressPrefixes, p)
	}
	for _, raw := range t.SharedVPCEndpoints {
		if !isToken(raw) && !IsVPCEndpointID(raw) {
			hint := ""
			if IsVPCID(raw) {
				// The natural mistake: the shared-services VPC instead of its endpoints.
				hint = fmt.Sprintf(" (that is a VPC: list its interface endpoints, `aws ec2 describe-vpc-endpoints --filters Name=vpc-id,Values=%s --query 'VpcEndpoints[].VpcEndpointId'`)", raw)
			}
			errs = append(errs, fmt.Errorf("shared VPC endpoint: %w %q: want vpce- followed by 8 or 17 lowercase hex digits%s",
				ErrInvalidVPCEndpoint, raw, hint))
			continue
		}
		out.SharedVPCEndpoints = append(out.SharedVPCEndpoints, raw)
	}
	if err := errors.Join(errs...); err != nil {
		return Trust{}, fmt.Errorf("lockpolicy: %w", err)
	}
	out.EgressPrefixes = sortedUnique(out.EgressPrefixes)
	out.SharedVPCEndpoints = sortedUnique(out.SharedVPCEndpoints)
	return out, nil
}

// The widest trusted egress prefixes: a /16 is the largest block an
// enterprise's egress realistically holds (IPv4), a /32 an ISP-sized IPv6
// allocation. Anything wider (0.0.0.0/1 and 128.0.0.0/1 together are the
// whole internet) is a mistake or an attack on the lock, not a trust.
const (
	MinTrustedPrefixBits4 = 16
	MinTrustedPrefixBits6 = 32
)

// notTooWide refuses a canonical prefix wider than MinTrustedPrefixBits4/6.
func notTooWide(raw, canonical string) error {
	p := netip.MustParsePrefix(canonical)
	limit := MinTrustedPrefixBits6
	if p.Addr().Is4() {
		limit = MinTrustedPrefixBits4
	}
	if p.Bits() < limit {
		return fmt.Errorf("%w %q: wider than /%d; a trusted prefix is an egress range, not a share of the internet",
			ErrInvalidSourceIP, raw, limit)
	}
	return nil
}

// ParseTrust reads a Trust from its two comma-separated forms (the
// environment variables contract.EnvTrustedEgressPrefixes and
// contract.EnvSharedVPCEndpoints, and the context keys), validated. Empty
// strings and empty items are nothing; a bad item is an error naming it.
func ParseTrust(egressPrefixes, sharedVPCEndpoints string) (Trust, error) {
	return Trust{EgressPrefixes: SplitList(egressPrefixes), SharedVPCEndpoints: SplitList(sharedVPCEndpoints)}.Validate(nil)
}

// Env renders t as the values of contract.EnvTrustedEgressPrefixes and
// contract.EnvSharedVPCEndpoints (ParseTrust reads them back).
func (t Trust) Env() (egressPrefixes, sharedVPCEndpoints string) {
	return strings.Join(t.EgressPrefixes, ","), strings.Join(t.SharedVPCEndpoints, ",")
}

// SplitList splits a comma-separated list, trimming blanks and dropping
// empty items.
func SplitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
