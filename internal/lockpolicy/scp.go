package lockpolicy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// The organisation-wide guard rail: a service control policy (SCP) that
// takes away what no EC2 instance credential of the organisation should ever
// do, whether or not its role carries a lock.
//
// Where the lock is precise (one role, its instances' own addresses), the
// SCP is coarse but universal: it needs no per-instance list, because every
// statement compares what the credentials say about the instance they were
// delivered to (aws:Ec2InstanceSourceVpc, aws:Ec2InstanceSourcePrivateIPv4)
// with where the request actually came from (aws:SourceVpc,
// aws:VpcSourceIp). The shape follows AWS's data-perimeter example for EC2
// roles, "EnforceNetworkPerimeterOnEC2Roles" in
// https://github.com/aws-samples/data-perimeter-policy-examples
// (service_control_policies/service_specific_controls/network_perimeter_ec2_scp.json):
// a Deny on every action, scoped to instance credentials with
// Null {"ec2:SourceInstanceARN": "false"}, sparing AWS services acting on the
// caller's behalf (aws:ViaAWSService) and EC2's own infrastructure role
// (aws:ec2-infrastructure).

// MaxSCPSize is the size AWS Organizations allows for one SCP, in
// characters. Unlike IAM's role-policy quota (MaxRolePolicySize, SizeOf),
// EVERY character counts, whitespace included: only the Organizations
// console strips whitespace before saving, the API, the CLI, the SDKs and
// CloudFormation store what they are given. Document.JSON is compact, so
// SCPSizeOf of it is exactly what Organizations counts, provided it is
// submitted as is (in CloudFormation: AWS::Organizations::Policy Content as
// the JSON string, not as an object for CloudFormation to re-serialise).
const MaxSCPSize = 5120

// SCPSizeOf returns the number of characters AWS Organizations counts for
// an SCP document against MaxSCPSize: all of them.
func SCPSizeOf(doc []byte) int { return utf8.RuneCount(doc) }

// Statement IDs of the SCP. They differ from the lock's so that a denial can
// be traced to the policy that made it when both apply.
const (
	// SidSCPDenyEndpointCallsFromOtherVpcs denies VPC endpoint calls made
	// with instance credentials from a VPC other than the one the
	// credentials were delivered to (except through a shared endpoint,
	// Trust.SharedVPCEndpoints). The lock's counterpart is
	// SidDenyEndpointCallsFromOutsideTheInstanceVpc.
	SidSCPDenyEndpointCallsFromOtherVpcs = "DenyInstanceCredentialsFromOtherVpcs"
	// SidSCPDenyEndpointCallsFromOtherHosts denies VPC endpoint calls made
	// with instance credentials from a private address other than the
	// primary private IPv4 of the instance they were delivered to. The
	// lock's counterpart is SidDenyEndpointCallsFromOtherHosts.
	SidSCPDenyEndpointCallsFromOtherHosts = "DenyInstanceCredentialsFromOtherHosts"
	// SidSCPDenyPublicCallsFromOtherAddresses (SCPOptions.RestrictInternet)
	// denies internet calls made with instance credentials from outside
	// Trust.EgressPrefixes. The lock's counterpart is
	// SidDenyPublicCallsFromOtherAddresses.
	SidSCPDenyPublicCallsFromOtherAddresses = "DenyInstanceCredentialsFromOtherAddresses"
)

// ec2InfrastructureRoleARN matches EC2's instance identity role, which EC2
// uses from AWS's own network to decrypt an instance's KMS-encrypted
// volumes, snapshots and AMIs. AWS's example exempts it; denying it would
// stop encrypted instances from starting. Any partition, any account.
const ec2InfrastructureRoleARN = "arn:*:iam::*:role/aws:ec2-infrastructure"

// Sentinel errors returned (wrapped) by SCP; test them with errors.Is.
var (
	// ErrInvalidAccountID means an exempt account is not a 12-digit
	// account id.
	ErrInvalidAccountID = errors.New("invalid AWS account id")
	// ErrInvalidTagKey means SCPOptions.ExemptRoleTag is not a tag key the
	// SCP can name.
	ErrInvalidTagKey = errors.New("invalid exempt role tag key")
	// ErrNoEgressPrefixes means SCPOptions.RestrictInternet is set without
	// Trust.EgressPrefixes.
	ErrNoEgressPrefixes = errors.New("RestrictInternet without trusted egress prefixes")
	// ErrSCPTooLarge means the rendered SCP exceeds MaxSCPSize.
	ErrSCPTooLarge = errors.New("SCP too large")
)

// SCPOptions configures the organisation-wide SCP. Every value is a literal
// and is validated (no deploy-time tokens: the SCP is sized exactly, which a
// token would defeat).
//
// Besides ExemptAccounts and ExemptRoleTag, the other way to exempt is not
// to attach the SCP where it must not apply: attach it to the OUs and
// accounts (the Targets of AWS::Organizations::Policy) that should have it,
// not to the root. SCPs never apply to the organisation's management
// account nor to service-linked roles.
type SCPOptions struct {
	// Trust is the organisation's: its SharedVPCEndpoints are spared by the
	// VPC check (by aws:SourceVpce, as Render does), its EgressPrefixes are
	// the only internet sources left when RestrictInternet is set (and are
	// unused otherwise). Validated like a lock's (Trust.Validate).
	Trust Trust
	// RestrictInternet adds SidSCPDenyPublicCallsFromOtherAddresses: instance
	// credentials may then be used over the internet only from
	// Trust.EgressPrefixes, which must not be empty. Every instance of every
	// account the SCP is attached to must then reach AWS's public endpoints
	// through those prefixes: an instance calling from its own public IP or
	// from its VPC's own NAT gateway is denied unless that address is listed.
	// Off (the default), the SCP does not restrict internet calls at all:
	// the per-role lock does.
	RestrictInternet bool
	// ExemptAccounts are 12-digit account ids whose principals the SCP never
	// denies (aws:PrincipalAccount), for accounts that must stay under an OU
	// the SCP is attached to.
	ExemptAccounts []string
	// ExemptRoleTag, when set, is a tag key: principals whose role carries
	// it with the value "true" (exactly, lowercase) are never denied
	// (aws:PrincipalTag/KEY). For an assumed-role session aws:PrincipalTag
	// is the session's tag if it has one and the role's tag otherwise; EC2
	// instance-profile sessions carry no session tags, so for instance
	// credentials it is the role's tag. Anyone who may tag roles (iam:TagRole)
	// can then exempt one: protect the key with an SCP that denies tagging
	// it to all but an administrator role (as AWS's
	// data_perimeter_governance_scp.json does for its dp: tags).
	// Letters, digits and _ . : / = + - @ only, at most 128, not "aws:...".
	ExemptRoleTag string
}

// tagKeyPattern is the subset of IAM tag keys that an SCP can name safely in
// a condition key: IAM's tag key characters without spaces or non-ASCII.
var tagKeyPattern = regexp.MustCompile(`^[A-Za-z0-9_.:/=+\-@]{1,128}$`)

// SCP renders the organisation-wide guard rail: a Deny-only service control
// policy (Action "*", Resource "*") that applies only to EC2 instance-role
// credentials, Null {"ec2:SourceInstanceARN": "false"}. That guard is right
// here and wrong in the lock: an SCP covers every principal of the account
// (IAM users, other roles, whose calls carry no instance keys and must be
// left alone), whereas the lock is attached to an instance role and must
// fail closed for credentials without the instance keys.
//
// Statements, in this order (each also carries the exemptions, see below):
//
//   - SidSCPDenyEndpointCallsFromOtherVpcs: a VPC endpoint call (no
//     aws:SourceIp) whose aws:SourceVpc is not the credentials'
//     aws:Ec2InstanceSourceVpc, unless it came through one of
//     Trust.SharedVPCEndpoints (aws:SourceVpce);
//   - SidSCPDenyEndpointCallsFromOtherHosts: a VPC endpoint call whose
//     aws:VpcSourceIp is not the credentials'
//     aws:Ec2InstanceSourcePrivateIPv4;
//   - SidSCPDenyPublicCallsFromOtherAddresses, with RestrictInternet only:
//     an internet call (aws:SourceIp present) from outside
//     Trust.EgressPrefixes.
//
// No statement denies an AWS service acting on the caller's behalf
// (BoolIfExists aws:ViaAWSService "false", as in the lock), EC2's
// aws:ec2-infrastructure role, a principal of ExemptAccounts
// (StringNotEquals aws:PrincipalAccount) or, with ExemptRoleTag, a principal
// whose role is tagged KEY=true (StringNotEquals aws:PrincipalTag/KEY).
//
// Unlike the lock, the SCP does not fail closed. It denies only a network
// origin that contradicts the credentials: a request with no network origin
// at all (neither aws:SourceIp nor aws:SourceVpc and aws:VpcSourceIp) is
// not denied, because the two endpoint statements carry Render's Null
// guards ({"aws:SourceVpc": "false"}, {"aws:VpcSourceIp": "false"}) so
// that their policy variables always resolve, and nothing else covers it.
// This is deliberate: the SCP reaches every instance of the organisation,
// including workloads nobody has reviewed, and AWS's own examples leave
// such requests alone; a locked role still denies them
// (SidDenyCallsWithoutSourceAddress). Credentials that carry
// ec2:SourceInstanceARN but not the instance's VPC or private IPv4 (an
// IPv6-only instance) are denied on VPC endpoints (StringNotEquals on an
// absent key is true), as in the lock and AWS's example: exempt such roles
// by tag. So are calls through an endpoint from the instance's secondary
// addresses or other network interfaces (e.g. containers using the
// instance role from their own interface).
//
// Lists are validated, deduplicated and sorted: equal options give
// byte-identical documents. The document may not exceed MaxSCPSize; the
// error (ErrSCPTooLarge) says how many exempt accounts would fit.
func SCP(o SCPOptions) (Document, error) {
	var errs []error
	trust, err := o.Trust.Validate(nil)
	if err != nil {
		errs = append(errs, err)
	}
	accounts := make([]string, 0, len(o.ExemptAccounts))
	for _, a := range o.ExemptAccounts {
		if !isAccountID(a) {
			errs = append(errs, fmt.Errorf("exempt account: %w %q: want 12 digits", ErrInvalidAccountID, a))
			continue
		}
		accounts = append(accounts, a)
	}
	if o.ExemptRoleTag != "" {
		if !tagKeyPattern.MatchString(o.ExemptRoleTag) {
			errs = append(errs, fmt.Errorf("%w %q: want 1 to 128 letters, digits or _ . : / = + - @", ErrInvalidTagKey, o.ExemptRoleTag))
		} else if strings.HasPrefix(strings.ToLower(o.ExemptRoleTag), "aws:") {
			errs = append(errs, fmt.Errorf("%w %q: the aws: prefix is reserved for AWS", ErrInvalidTagKey, o.ExemptRoleTag))
		}
	}
	if o.RestrictInternet && len(o.Trust.EgressPrefixes) == 0 {
		errs = append(errs, fmt.Errorf("%w: the SCP would deny every internet call made with EC2 instance credentials "+
			"in every account it is attached to; list the organisation's egress prefixes in Trust.EgressPrefixes "+
			"or leave internet calls to the per-role lock", ErrNoEgressPrefixes))
	}
	if err := errors.Join(errs...); err != nil {
		return Document{}, fmt.Errorf("lockpolicy: SCP: %w", err)
	}
	accounts = sortedUnique(accounts)

	doc := scpDocument(trust, o.RestrictInternet, accounts, o.ExemptRoleTag)
	size, err := scpSize(doc)
	if err != nil {
		return Document{}, err
	}
	if size <= MaxSCPSize {
		return doc, nil
	}
	// Too large: tell how many exempt accounts fit with everything else as
	// it is (the size grows with every account, so the first that does not
	// fit ends the search).
	fit := -1
	for k := len(accounts) - 1; k >= 0; k-- {
		n, err := scpSize(scpDocument(trust, o.RestrictInternet, accounts[:k], o.ExemptRoleTag))
		if err != nil {
			return Document{}, err
		}
		if n <= MaxSCPSize {
			fit = k
			break
		}
	}
	if fit < 0 {
		return Document{}, fmt.Errorf("lockpolicy: SCP: %w: %d characters, over the %d AWS Organizations allows, even without exempt accounts: "+
			"list fewer shared VPC endpoints or egress prefixes", ErrSCPTooLarge, size, MaxSCPSize)
	}
	return Document{}, fmt.Errorf("lockpolicy: SCP: %w: %d characters, over the %d AWS Organizations allows: "+
		"at most %d of the %d exempt accounts fit; exempt the others by not attaching the SCP to them or to their OUs",
		ErrSCPTooLarge, size, MaxSCPSize, fit, len(accounts))
}

// scpSize is SCPSizeOf the document's JSON.
func scpSize(d Document) (int, error) {
	b, err := d.JSON()
	if err != nil {
		return 0, fmt.Errorf("lockpolicy: SCP: %w", err)
	}
	return SCPSizeOf(b), nil
}

// scpDocument builds the SCP from validated, canonical, sorted values.
func scpDocument(trust Trust, restrictInternet bool, accounts []string, tag string) Document {
	// Stolen credentials used through an endpoint of another VPC. The
	// conditions are the lock's SidDenyEndpointCallsFromOutsideTheInstanceVpc
	// (see Render for why each one is there; scp_test.go checks that they
	// stay the same): deny only if the VPCs differ AND the endpoint is not
	// a shared one.
	outside := map[string]any{"aws:Ec2InstanceSourceVpc": "${aws:SourceVpc}"}
	if len(trust.SharedVPCEndpoints) > 0 {
		outside["aws:SourceVpce"] = listValue(trust.SharedVPCEndpoints)
	}
	st := []Statement{
		deny(SidSCPDenyEndpointCallsFromOtherVpcs, map[string]map[string]any{
			"StringNotEquals": outside,
			"Null":            {"aws:SourceIp": "true", "aws:SourceVpc": "false"},
			"BoolIfExists":    notViaAWSService(),
		}),
		// Stolen credentials used through an endpoint from another host:
		// the lock's SidDenyEndpointCallsFromOtherHosts. Through a shared
		// endpoint too: the host check holds wherever the endpoint is.
		deny(SidSCPDenyEndpointCallsFromOtherHosts, map[string]map[string]any{
			"StringNotEquals": {"aws:Ec2InstanceSourcePrivateIPv4": "${aws:VpcSourceIp}"},
			"Null":            {"aws:SourceIp": "true", "aws:VpcSourceIp": "false"},
			"BoolIfExists":    notViaAWSService(),
		}),
	}
	if restrictInternet {
		// The lock's internet statement, on the organisation's egress
		// prefixes instead of an instance's addresses.
		s := denyPublicCalls(trust.EgressPrefixes)
		s.Sid = SidSCPDenyPublicCallsFromOtherAddresses
		st = append(st, s)
	}
	for i := range st {
		st[i].Condition = scpScoped(st[i].Condition, accounts, tag)
	}
	return Document{Version: PolicyVersion, Statement: st}
}

// scpScoped adds to a lock statement's conditions what makes it an SCP
// statement: it applies only to EC2 instance credentials
// (ec2:SourceInstanceARN present) and never to EC2's infrastructure role,
// an exempt account or a role tagged as exempt. Every key added to
// StringNotEquals is ANDed with the ones there: the statement denies only if
// the principal is not exempt in any way. Negated operators are true when
// the key is absent, so a principal without the tag is not exempt.
func scpScoped(cond map[string]map[string]any, accounts []string, tag string) map[string]map[string]any {
	cond["Null"]["ec2:SourceInstanceARN"] = "false"
	cond["ArnNotLike"] = map[string]any{"aws:PrincipalArn": ec2InfrastructureRoleARN}
	if len(accounts) > 0 || tag != "" {
		if cond["StringNotEquals"] == nil {
			cond["StringNotEquals"] = map[string]any{}
		}
	}
	if len(accounts) > 0 {
		cond["StringNotEquals"]["aws:PrincipalAccount"] = listValue(accounts)
	}
	if tag != "" {
		cond["StringNotEquals"]["aws:PrincipalTag/"+tag] = "true"
	}
	return cond
}

// isAccountID reports whether s is a 12-digit AWS account id.
func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
