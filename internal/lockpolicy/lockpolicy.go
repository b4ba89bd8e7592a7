// Package lockpolicy renders the "lock": the IAM policy of explicit Deny
// statements that Defenders attaches to an EC2 instance role so that the
// role's credentials are worthless anywhere but on the instances they were
// delivered to.
//
// The lock grants nothing. It only denies, with Action "*" and Resource "*";
// the role's own allow policies (for example AmazonEC2ReadOnlyAccess) grant
// the permissions. A request made with the role's credentials survives the
// lock only if it arrives
//
//   - over the public internet from one of Lock.SourceIPs, or
//   - through a VPC endpoint in one of Lock.VPCs, from the VPC and the
//     primary private IPv4 address of the very instance the credentials were
//     delivered to, or
//   - from an AWS service acting on the caller's behalf (aws:ViaAWSService),
//     which only happens after the caller's own request passed the lock.
//
// Everything else, including requests that carry no network origin at all,
// is denied: the lock fails closed.
//
// Render is the one source of truth for the document. The CDK construct
// feeds it CloudFormation tokens; the locker Lambda feeds it real addresses.
//
// The package owns every lock-shaped document and the facts they rest on,
// each in one place:
//
//   - the lock (Render, this file), the locker's lock of last resort
//     (DenyAll, denyall.go) and the lockdown package's STS session policy
//     (SessionPolicy, session.go), all built from the same statements;
//   - how big a document may be and how its size is counted
//     (MaxRolePolicySize, MaxSessionPolicySize, SizeOf; size.go);
//   - what a VPC id looks like and which addresses are public (IsVPCID,
//     NonPublicReason, IsPublic, IsPrivateNetwork; address.go), which
//     checkip, the locker and the detector use too.
//
// Subpackage ec2addr reads an instance's addresses out of an EC2
// DescribeInstances record for both the locker and the detector.
package lockpolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// PolicyVersion is the IAM policy language version of every lock.
const PolicyVersion = "2012-10-17"

// Statement IDs of the lock. Each one names the calls it denies.
const (
	// SidDenyPublicCallsFromOtherAddresses denies internet calls whose
	// aws:SourceIp is not one of Lock.SourceIPs.
	SidDenyPublicCallsFromOtherAddresses = "DenyPublicCallsFromOtherAddresses"
	// SidDenyPublicCallsFromAnyAddress replaces
	// SidDenyPublicCallsFromOtherAddresses when Lock.SourceIPs is empty
	// ("VPC endpoints only" mode).
	SidDenyPublicCallsFromAnyAddress = "DenyPublicCallsFromAnyAddress"
	// SidDenyEndpointCallsFromOtherVpcs denies calls that did not come over
	// the internet unless they came through a VPC endpoint of one of
	// Lock.VPCs.
	SidDenyEndpointCallsFromOtherVpcs = "DenyEndpointCallsFromOtherVpcs"
	// SidDenyEndpointCallsFromAnyVpc replaces SidDenyEndpointCallsFromOtherVpcs
	// when Lock.VPCs is empty: every call that did not come over the internet
	// is denied.
	SidDenyEndpointCallsFromAnyVpc = "DenyEndpointCallsFromAnyVpc"
	// SidDenyEndpointCallsFromOtherHosts denies VPC endpoint calls whose
	// source private IP is not the instance the credentials were delivered to.
	SidDenyEndpointCallsFromOtherHosts = "DenyEndpointCallsFromOtherHosts"
	// SidDenyEndpointCallsFromOutsideTheInstanceVpc denies VPC endpoint calls
	// from a VPC other than the one the credentials were delivered to.
	SidDenyEndpointCallsFromOutsideTheInstanceVpc = "DenyEndpointCallsFromOutsideTheInstanceVpc"
	// SidDenyCallsWithoutSourceAddress denies calls that carry neither a
	// public nor a VPC source address.
	SidDenyCallsWithoutSourceAddress = "DenyCallsWithoutSourceAddress"
)

// Sentinel errors returned (wrapped) by Render; test them with errors.Is.
var (
	// ErrNothingToLock means the Lock lists neither source IPs nor VPCs.
	ErrNothingToLock = errors.New("nothing to lock to: no source IPs and no VPCs")
	// ErrInvalidSourceIP means a source IP is malformed or not acceptable.
	ErrInvalidSourceIP = errors.New("invalid source IP")
	// ErrInvalidVPC means a VPC id is malformed.
	ErrInvalidVPC = errors.New("invalid VPC id")
)

// Lock lists where the role's credentials may be used from.
type Lock struct {
	// SourceIPs are the public addresses or CIDRs the role may call from
	// over the internet: the instance's public IPv4, Elastic IPs, NAT
	// gateway EIPs, IPv6 addresses (bare or CIDR). Literal values or tokens.
	SourceIPs []string
	// VPCs are the ids of the VPCs whose VPC endpoints the role may call
	// through (vpc-xxxxxxxx, or tokens).
	VPCs []string
	// Trust is what the whole app trusts besides the instance: its egress
	// prefixes join SourceIPs, its shared VPC endpoints are admitted by
	// aws:SourceVpce next to VPCs (see Trust).
	Trust Trust
}

// Options tunes Render.
type Options struct {
	// IsToken reports whether a value is an unresolved deploy-time token
	// (for example a CDK token such as "${Token[TOKEN.123]}"). Such values
	// are passed through verbatim and unvalidated; everything else is
	// validated. A nil IsToken treats every value as a literal.
	//
	// A token for a source IP is emitted as is: if it resolves to a bare
	// address, IAM sees a bare address. IAM documents /32 as the default
	// prefix for a bare address, which is right for IPv4; a token that
	// resolves to an IPv6 address should carry its own "/128" (e.g. via
	// Fn::Join), since a /32 default would cover a whole IPv6 allocation.
	IsToken func(string) bool
}

// Document is an IAM policy document.
type Document struct {
	// Version is the policy language version, always PolicyVersion.
	Version string `json:"Version"`
	// Statement holds the statements in a fixed order.
	Statement []Statement `json:"Statement"`
}

// Statement is one IAM policy statement. In a lock, Effect is always
// "Deny" and Action and Resource are always "*"; a session policy
// (SessionPolicy) also has an Allow and a Deny on a list of actions.
type Statement struct {
	// Sid names the statement.
	Sid string `json:"Sid"`
	// Effect is "Allow" or "Deny".
	Effect string `json:"Effect"`
	// Action is the action pattern (a string) or patterns (a []string).
	Action any `json:"Action"`
	// Resource is the resource pattern.
	Resource string `json:"Resource"`
	// Condition maps operator -> context key -> value, where a value is a
	// string or a []string.
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

// Render builds the lock document for l.
//
// Literal source IPs are validated and canonicalised (a bare address gets
// "/32" or "/128"); /0 prefixes, addresses that are not public
// (NonPublicReason: private, loopback, link-local, multicast, unspecified,
// shared or reserved), and prefixes with host bits set are rejected.
// Literal VPC ids must be VPC ids (IsVPCID). Lists are deduplicated
// and sorted, so equal inputs give byte-identical documents.
//
// A Lock with neither source IPs nor VPCs is an error (ErrNothingToLock).
// Without VPCs every VPC endpoint call is denied; without source IPs every
// internet call is denied ("VPC endpoints only" mode).
func Render(l Lock, o Options) (Document, error) {
	isToken := o.IsToken
	if isToken == nil {
		isToken = func(string) bool { return false }
	}
	var errs []error
	ips := make([]string, 0, len(l.SourceIPs))
	for _, raw := range l.SourceIPs {
		if isToken(raw) {
			ips = append(ips, raw)
			continue
		}
		ip, err := canonicalSourceIP(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ips = append(ips, ip)
	}
	vpcs := make([]string, 0, len(l.VPCs))
	for _, raw := range l.VPCs {
		if !isToken(raw) && !IsVPCID(raw) {
			errs = append(errs, fmt.Errorf("%w %q: want vpc- followed by 8 or 17 lowercase hex digits", ErrInvalidVPC, raw))
			continue
		}
		vpcs = append(vpcs, raw)
	}
	trust, err := l.Trust.Validate(isToken)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Document{}, fmt.Errorf("lockpolicy: render: %w", err)
	}
	ips = append(ips, trust.EgressPrefixes...)
	shared := trust.SharedVPCEndpoints
	if len(ips) == 0 && len(vpcs) == 0 && len(shared) == 0 {
		return Document{}, fmt.Errorf("lockpolicy: render: %w", ErrNothingToLock)
	}
	ips = sortedUnique(ips)
	vpcs = sortedUnique(vpcs)

	// Internet path. aws:SourceIp is present exactly when the request came
	// over the internet: AWS omits it for VPC endpoint requests.
	st := []Statement{denyPublicCalls(ips)}

	// Everything else: requests WITHOUT aws:SourceIp. These are VPC endpoint
	// calls, or requests of unknown origin, which must be denied too. Every
	// statement below is scoped with Null {"aws:SourceIp": "true"} so it
	// never touches internet calls, which are fully handled above.
	st = append(st, denyEndpointCalls(vpcs, shared))
	if len(vpcs) == 0 && len(shared) == 0 {
		return Document{Version: PolicyVersion, Statement: st}, nil
	}
	notViaService := notViaAWSService()

	// Stolen credentials used through the endpoint from another host, even
	// one inside the same VPC (e). aws:Ec2InstanceSourcePrivateIPv4 travels
	// with the credentials and holds the primary private IPv4 of the
	// instance they were delivered to; aws:VpcSourceIp is where the request
	// actually came from. No per-instance list is needed, so this also works
	// for roles shared by many instances.
	//
	// Why Null {"aws:VpcSourceIp": "false"}: IAM's behaviour for a policy
	// variable whose key is absent is not something to bet a lock on (the
	// iam-simulate test oracle treats it as "never matches", which would
	// turn this Deny off). The Null check guarantees the variable resolves
	// whenever the statement can apply; the "absent" case is denied
	// explicitly by SidDenyCallsWithoutSourceAddress.
	//
	// If the credentials lack aws:Ec2InstanceSourcePrivateIPv4 (not EC2
	// instance credentials, or an IPv6-only instance), StringNotEquals on
	// the absent key is TRUE: denied, fail closed (g). Unlike AWS's SCP
	// example we deliberately do NOT add Null {"ec2:SourceInstanceARN":
	// "false"}: that would exempt credentials without the instance keys,
	// whereas this policy is attached only to an instance role and must
	// fail closed.
	st = append(st, deny(SidDenyEndpointCallsFromOtherHosts, map[string]map[string]any{
		"StringNotEquals": {"aws:Ec2InstanceSourcePrivateIPv4": "${aws:VpcSourceIp}"},
		"Null":            {"aws:SourceIp": "true", "aws:VpcSourceIp": "false"},
		"BoolIfExists":    notViaService,
	}))

	// Stolen credentials used through an endpoint of another listed VPC from
	// a host that happens to have the same private IP (private ranges
	// overlap between VPCs). aws:Ec2InstanceSourceVpc travels with the
	// credentials. Null {"aws:SourceVpc": "false"} guarantees the variable
	// resolves (see above; its absence is denied by
	// SidDenyEndpointCallsFromOtherVpcs), and credentials without
	// aws:Ec2InstanceSourceVpc are denied because StringNotEquals on an
	// absent key is TRUE.
	//
	// A shared endpoint (Trust.SharedVPCEndpoints) lives in another VPC, so
	// there aws:SourceVpc is the endpoint's VPC and never the instance's:
	// the statement spares calls through a listed endpoint (keys within one
	// operator are ANDed: deny only if the VPCs differ AND the endpoint is
	// not a shared one). An absent aws:SourceVpce makes StringNotEquals TRUE:
	// still denied.
	outside := map[string]any{"aws:Ec2InstanceSourceVpc": "${aws:SourceVpc}"}
	if len(shared) > 0 {
		outside["aws:SourceVpce"] = listValue(shared)
	}
	st = append(st, deny(SidDenyEndpointCallsFromOutsideTheInstanceVpc, map[string]map[string]any{
		"StringNotEquals": outside,
		"Null":            {"aws:SourceIp": "true", "aws:SourceVpc": "false"},
		"BoolIfExists":    notViaService,
	}))

	// Fail closed (g): a request with neither a public source address
	// (aws:SourceIp) nor a VPC source address (aws:VpcSourceIp) cannot be
	// attributed to the instance. This is also the case the Null check of
	// SidDenyEndpointCallsFromOtherHosts leaves out.
	st = append(st, deny(SidDenyCallsWithoutSourceAddress, map[string]map[string]any{
		"Null":         {"aws:SourceIp": "true", "aws:VpcSourceIp": "true"},
		"BoolIfExists": notViaService,
	}))

	return Document{Version: PolicyVersion, Statement: st}, nil
}

// notViaAWSService is the condition every deny statement carries. AWS
// services that act on the caller's behalf (forward access sessions, e.g.
// CloudFormation or EBS calling KMS) send aws:ViaAWSService=true and their
// own network origin, which can never match the instance; they must not be
// denied. This is safe because such calls only happen after the caller's
// own request passed the lock. BoolIfExists makes a request WITHOUT the key
// count as "not via a service", so it is still denied: fail closed.
func notViaAWSService() map[string]any { return map[string]any{"aws:ViaAWSService": "false"} }

// denyPublicCalls is the internet-path statement: with ips, it denies
// requests that came over the internet from any other address
// (SidDenyPublicCallsFromOtherAddresses); without, every request that came
// over the internet (SidDenyPublicCallsFromAnyAddress, "VPC endpoints
// only"). ips must be canonical, sorted and unique.
func denyPublicCalls(ips []string) Statement {
	if len(ips) == 0 {
		return deny(SidDenyPublicCallsFromAnyAddress, map[string]map[string]any{
			"Null":         {"aws:SourceIp": "false"},
			"BoolIfExists": notViaAWSService(),
		})
	}
	// Stolen credentials used from any other public address (a).
	// NotIpAddress alone would also be TRUE when aws:SourceIp is missing
	// (negated operators match absent keys), which would deny every VPC
	// endpoint call; Null "false" limits the statement to requests that
	// actually came over the internet. The endpoint path is locked apart.
	return deny(SidDenyPublicCallsFromOtherAddresses, map[string]map[string]any{
		"NotIpAddress": {"aws:SourceIp": listValue(ips)},
		"Null":         {"aws:SourceIp": "false"},
		"BoolIfExists": notViaAWSService(),
	})
}

// denyEndpointCalls is the first statement of the path without
// aws:SourceIp: with vpcs or shared endpoints, it denies calls through a
// VPC endpoint that is neither in a listed VPC nor a listed shared endpoint
// (SidDenyEndpointCallsFromOtherVpcs, (d)); without, every request that did
// not come over the internet, including requests with no network origin at
// all (SidDenyEndpointCallsFromAnyVpc). vpcs and shared must be sorted and
// unique.
func denyEndpointCalls(vpcs, shared []string) Statement {
	if len(vpcs) == 0 && len(shared) == 0 {
		return deny(SidDenyEndpointCallsFromAnyVpc, map[string]map[string]any{
			"Null":         {"aws:SourceIp": "true"},
			"BoolIfExists": notViaAWSService(),
		})
	}
	// If aws:SourceVpc is missing as well, StringNotEquals on the absent
	// key is TRUE, so a request with neither aws:SourceIp nor aws:SourceVpc
	// is denied here (g).
	// With shared endpoints, both keys in one StringNotEquals: denied only
	// if the call's VPC is not listed AND its endpoint is not shared.
	notListed := map[string]any{}
	if len(vpcs) > 0 {
		notListed["aws:SourceVpc"] = listValue(vpcs)
	}
	if len(shared) > 0 {
		notListed["aws:SourceVpce"] = listValue(shared)
	}
	return deny(SidDenyEndpointCallsFromOtherVpcs, map[string]map[string]any{
		"StringNotEquals": notListed,
		"Null":            {"aws:SourceIp": "true"},
		"BoolIfExists":    notViaAWSService(),
	})
}

// deny builds a Deny statement on every action and resource.
func deny(sid string, cond map[string]map[string]any) Statement {
	return Statement{Sid: sid, Effect: "Deny", Action: "*", Resource: "*", Condition: cond}
}

// canonicalSourceIP validates a literal address or CIDR and returns it in
// canonical CIDR form.
func canonicalSourceIP(raw string) (string, error) {
	var p netip.Prefix
	if strings.Contains(raw, "/") {
		pp, err := netip.ParsePrefix(raw)
		if err != nil {
			return "", fmt.Errorf("%w %q: %w", ErrInvalidSourceIP, raw, err)
		}
		if pp.Masked() != pp {
			return "", fmt.Errorf("%w %q: host bits set; use %s for the single address or %s for the network",
				ErrInvalidSourceIP, raw, netip.PrefixFrom(pp.Addr(), pp.Addr().BitLen()), pp.Masked())
		}
		p = pp
	} else {
		a, err := netip.ParseAddr(raw)
		if err != nil {
			return "", fmt.Errorf("%w %q: %w", ErrInvalidSourceIP, raw, err)
		}
		if a.Zone() != "" {
			return "", fmt.Errorf("%w %q: zoned addresses are not allowed", ErrInvalidSourceIP, raw)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	a := p.Addr()
	switch {
	case p.Bits() == 0:
		return "", fmt.Errorf("%w %q: a /0 prefix would allow the whole internet", ErrInvalidSourceIP, raw)
	case a.Is4In6():
		return "", fmt.Errorf("%w %q: IPv4-mapped IPv6; write the IPv4 address", ErrInvalidSourceIP, raw)
	case !IsPublic(a):
		return "", fmt.Errorf("%w %q: not a public address, so it never appears in aws:SourceIp; list the VPC instead",
			ErrInvalidSourceIP, raw)
	}
	return p.String(), nil
}

// sortedUnique returns s sorted with duplicates removed.
func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// listValue renders a condition value list: a plain string when it has one
// element (IAM treats both forms alike; the string is shorter).
func listValue(s []string) any {
	if len(s) == 1 {
		return s[0]
	}
	return s
}

// normalized returns a copy of d whose []string condition values are sorted
// and deduplicated, with single-element lists rendered as strings.
func (d Document) normalized() Document {
	out := Document{Version: d.Version, Statement: make([]Statement, len(d.Statement))}
	for i, s := range d.Statement {
		if s.Condition != nil {
			cond := make(map[string]map[string]any, len(s.Condition))
			for op, kv := range s.Condition {
				m := make(map[string]any, len(kv))
				for k, v := range kv {
					if list, ok := v.([]string); ok {
						v = listValue(sortedUnique(list))
					}
					m[k] = v
				}
				cond[op] = m
			}
			s.Condition = cond
		}
		out.Statement[i] = s
	}
	return out
}

// JSON returns the document as compact, deterministic JSON: what IAM stores.
// Keys appear in the conventional IAM order (Version, Statement; Sid,
// Effect, Action, Resource, Condition), condition operators and keys are
// sorted, and value lists are sorted and deduplicated.
func (d Document) JSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d.normalized()); err != nil {
		return nil, fmt.Errorf("lockpolicy: encode document: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Map returns the document as generic JSON values (map[string]any, []any,
// string), e.g. for awsiam.PolicyDocument_FromJson in the CDK construct.
// It carries exactly what JSON returns.
func (d Document) Map() map[string]any {
	n := d.normalized()
	stmts := make([]any, len(n.Statement))
	for i, s := range n.Statement {
		action := s.Action
		if list, ok := action.([]string); ok {
			items := make([]any, len(list))
			for j, x := range list {
				items[j] = x
			}
			action = items
		}
		m := map[string]any{"Sid": s.Sid, "Effect": s.Effect, "Action": action, "Resource": s.Resource}
		if s.Condition != nil {
			cond := make(map[string]any, len(s.Condition))
			for op, kv := range s.Condition {
				keys := make(map[string]any, len(kv))
				for k, v := range kv {
					if list, ok := v.([]string); ok {
						items := make([]any, len(list))
						for j, x := range list {
							items[j] = x
						}
						v = items
					}
					keys[k] = v
				}
				cond[op] = keys
			}
			m["Condition"] = cond
		}
		stmts[i] = m
	}
	return map[string]any{"Version": n.Version, "Statement": stmts}
}

// Size returns the number of characters IAM counts against the per-role
// inline policy limit (MaxRolePolicySize), see SizeOf. It returns -1 if the
// document cannot be encoded.
func (d Document) Size() int {
	b, err := d.JSON()
	if err != nil {
		return -1
	}
	return SizeOf(b)
}
