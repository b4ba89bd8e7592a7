package lockdown

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// MaxSessionPolicySize is the plaintext limit STS puts on an inline session
// policy (AssumeRole's Policy parameter).
const MaxSessionPolicySize = 2048

// Statement ids of the session policy. The deny statements reuse
// lockpolicy's ids where they mean the same thing.
const (
	// SidAllowWhatTheRoleAllows is the session policy's only Allow. A
	// session policy intersects with the role's policies, so it grants
	// nothing the role does not already have.
	SidAllowWhatTheRoleAllows = "AllowWhatTheRoleAllows"
	// SidDenyPublicCallsFromOtherAddresses denies internet calls from any
	// address but the one found (lockpolicy's id).
	SidDenyPublicCallsFromOtherAddresses = lockpolicy.SidDenyPublicCallsFromOtherAddresses
	// SidDenyEndpointCallsFromOtherVpcs denies calls that did not come over
	// the internet unless they came through a VPC endpoint of a listed VPC
	// (lockpolicy's id).
	SidDenyEndpointCallsFromOtherVpcs = lockpolicy.SidDenyEndpointCallsFromOtherVpcs
	// SidDenyEndpointCallsFromAnyVpc replaces
	// SidDenyEndpointCallsFromOtherVpcs when no VPC is listed
	// (lockpolicy's id).
	SidDenyEndpointCallsFromAnyVpc = lockpolicy.SidDenyEndpointCallsFromAnyVpc
	// SidDenySheddingTheLock denies the calls that would mint new
	// credentials without this session policy.
	SidDenySheddingTheLock = "DenySheddingTheLock"
)

// SheddingActions are the STS actions that could turn locked credentials
// into credentials without the lock. sts:AssumeRole is the one that
// matters for a role session (it could re-assume its own role, or another
// role, without a session policy); the others cannot be called with role
// credentials at all today and are denied so that this stays true.
var SheddingActions = []string{
	"sts:AssumeRole",
	"sts:AssumeRoleWithSAML",
	"sts:AssumeRoleWithWebIdentity",
	"sts:GetFederationToken",
	"sts:GetSessionToken",
}

// statement is one policy statement; Action may be a string or a list.
type statement struct {
	Sid       string                    `json:"Sid"`
	Effect    string                    `json:"Effect"`
	Action    any                       `json:"Action"`
	Resource  string                    `json:"Resource"`
	Condition map[string]map[string]any `json:"Condition,omitempty"`
}

type document struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

var vpcIDPattern = regexp.MustCompile(`^vpc-[0-9a-f]{8,17}$`)

// SessionPolicy returns the session policy that locks a role session to
// one public address (addr, as AWS sees it in aws:SourceIp) and, if vpcs
// is not empty, to the VPC endpoints of those VPCs:
//
//   - AllowWhatTheRoleAllows: Allow * on *; the session's permissions are
//     the intersection of this and the role's policies, i.e. the role's.
//   - DenyPublicCallsFromOtherAddresses: deny internet calls whose
//     aws:SourceIp is not addr.
//   - DenyEndpointCallsFromOtherVpcs (with vpcs) or
//     DenyEndpointCallsFromAnyVpc (without): deny calls without
//     aws:SourceIp, i.e. through VPC endpoints or of unknown origin, unless
//     they came through an endpoint of a listed VPC (aws:SourceVpc).
//   - DenySheddingTheLock: deny SheddingActions, unconditionally, so the
//     session cannot mint unlocked credentials.
//
// The first three denies apply only when aws:ViaAWSService is not true,
// exactly like the lock: services acting on the session's behalf call from
// their own addresses. Unlike the EC2 lock, endpoint calls are not pinned
// to a host: a Lambda function's credentials carry no
// aws:Ec2InstanceSourcePrivateIPv4, so the lock's per-host statements would
// deny every endpoint call; the VPC is the finest scope available.
//
// addr must be a public address or prefix (not /0); vpcs must be VPC ids.
// The result is compact JSON, at most MaxSessionPolicySize characters.
func SessionPolicy(addr netip.Prefix, vpcs []string) ([]byte, error) {
	if !addr.IsValid() {
		return nil, fmt.Errorf("lockdown: session policy: no address")
	}
	addr = addr.Masked()
	a := addr.Addr()
	if addr.Bits() == 0 || a.Zone() != "" || a.Is4In6() || a.IsUnspecified() || a.IsLoopback() ||
		a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsPrivate() {
		return nil, fmt.Errorf("lockdown: session policy: %s is not a public address that AWS could see as aws:SourceIp", addr)
	}
	vpcs = slices.Clone(vpcs)
	slices.Sort(vpcs)
	vpcs = slices.Compact(vpcs)
	for _, v := range vpcs {
		if !vpcIDPattern.MatchString(v) {
			return nil, fmt.Errorf("lockdown: session policy: %q is not a VPC id", v)
		}
	}
	notViaService := map[string]any{"aws:ViaAWSService": "false"}
	deny := func(sid string, cond map[string]map[string]any) statement {
		return statement{Sid: sid, Effect: "Deny", Action: "*", Resource: "*", Condition: cond}
	}
	st := []statement{
		{Sid: SidAllowWhatTheRoleAllows, Effect: "Allow", Action: "*", Resource: "*"},
		deny(SidDenyPublicCallsFromOtherAddresses, map[string]map[string]any{
			"NotIpAddress": {"aws:SourceIp": addr.String()},
			"Null":         {"aws:SourceIp": "false"},
			"BoolIfExists": notViaService,
		}),
	}
	if len(vpcs) > 0 {
		var v any = vpcs
		if len(vpcs) == 1 {
			v = vpcs[0]
		}
		st = append(st, deny(SidDenyEndpointCallsFromOtherVpcs, map[string]map[string]any{
			"StringNotEquals": {"aws:SourceVpc": v},
			"Null":            {"aws:SourceIp": "true"},
			"BoolIfExists":    notViaService,
		}))
	} else {
		st = append(st, deny(SidDenyEndpointCallsFromAnyVpc, map[string]map[string]any{
			"Null":         {"aws:SourceIp": "true"},
			"BoolIfExists": notViaService,
		}))
	}
	st = append(st, statement{Sid: SidDenySheddingTheLock, Effect: "Deny", Action: SheddingActions, Resource: "*"})

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(document{Version: lockpolicy.PolicyVersion, Statement: st}); err != nil {
		return nil, fmt.Errorf("lockdown: session policy: encode: %w", err)
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(out) > MaxSessionPolicySize {
		return nil, fmt.Errorf("lockdown: session policy: %d characters, STS allows %d (too many VPCs)", len(out), MaxSessionPolicySize)
	}
	return out, nil
}
