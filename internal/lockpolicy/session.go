package lockpolicy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Statement ids that only the session policy has. Its deny statements reuse
// the lock's ids where they mean the same thing
// (SidDenyPublicCallsFromOtherAddresses, SidDenyEndpointCallsFromOtherVpcs,
// SidDenyEndpointCallsFromAnyVpc).
const (
	// SidAllowWhatTheRoleAllows is the session policy's only Allow. A
	// session policy intersects with the role's policies, so it grants
	// nothing the role does not already have.
	SidAllowWhatTheRoleAllows = "AllowWhatTheRoleAllows"
	// SidDenySheddingTheLock denies the calls that would mint new
	// credentials without the session policy.
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

// SessionPolicy returns the STS session policy that locks a role session
// (the lockdown package's Lambda credentials) to one public address (addr,
// as AWS sees it in aws:SourceIp) and, if vpcs is not empty, to the VPC
// endpoints of those VPCs:
//
//   - SidAllowWhatTheRoleAllows: Allow * on *; the session's permissions
//     are the intersection of this and the role's policies, i.e. the
//     role's.
//   - SidDenyPublicCallsFromOtherAddresses: deny internet calls whose
//     aws:SourceIp is not addr (the lock's statement).
//   - SidDenyEndpointCallsFromOtherVpcs (with vpcs) or
//     SidDenyEndpointCallsFromAnyVpc (without): deny calls without
//     aws:SourceIp, i.e. through VPC endpoints or of unknown origin, unless
//     they came through an endpoint of a listed VPC (aws:SourceVpc) (the
//     lock's statements).
//   - SidDenySheddingTheLock: deny SheddingActions, unconditionally, so the
//     session cannot mint unlocked credentials.
//
// The first three denies apply only when aws:ViaAWSService is not true,
// exactly like the lock: services acting on the session's behalf call from
// their own addresses. Unlike the EC2 lock, endpoint calls are not pinned
// to a host: a Lambda function's credentials carry no
// aws:Ec2InstanceSourcePrivateIPv4, so the lock's per-host statements would
// deny every endpoint call; the VPC is the finest scope available.
//
// addr must be a public prefix (IsPublicPrefix; it is masked); vpcs must be
// VPC ids (IsVPCID; they are sorted and deduplicated). The document's JSON
// is at most MaxSessionPolicySize characters, or SessionPolicy fails.
func SessionPolicy(addr netip.Prefix, vpcs []string) (Document, error) {
	if !addr.IsValid() {
		return Document{}, errors.New("lockpolicy: session policy: no address")
	}
	addr = addr.Masked()
	if !IsPublicPrefix(addr) {
		return Document{}, fmt.Errorf("lockpolicy: session policy: %s is not a public address that AWS could see as aws:SourceIp", addr)
	}
	vpcs = sortedUnique(vpcs)
	for _, v := range vpcs {
		if !IsVPCID(v) {
			return Document{}, fmt.Errorf("lockpolicy: session policy: %q is not a VPC id", v)
		}
	}
	doc := Document{Version: PolicyVersion, Statement: []Statement{
		{Sid: SidAllowWhatTheRoleAllows, Effect: "Allow", Action: "*", Resource: "*"},
		denyPublicCalls([]string{addr.String()}),
		denyEndpointCalls(vpcs, nil),
		{Sid: SidDenySheddingTheLock, Effect: "Deny", Action: slices.Clone(SheddingActions), Resource: "*"},
	}}
	if size := doc.Size(); size < 0 || size > MaxSessionPolicySize {
		return Document{}, fmt.Errorf("lockpolicy: session policy: %d characters, STS allows %d (too many VPCs)", size, MaxSessionPolicySize)
	}
	return doc, nil
}
