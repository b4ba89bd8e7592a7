// Package lock provides the Lock construct: an explicit-Deny IAM policy, attached to an instance
// role as its own AWS::IAM::Policy resource, that makes the role's credentials useless anywhere but
// the network positions it lists. The document comes from internal/lockpolicy, the single renderer
// shared with the locker Lambda.
//
// Why a separate resource: the lock needs the instance's public IP, the instance needs the role,
// and the role is the lock's target. Inlining the lock in the role would be a dependency cycle; a
// separate policy that references the instance's PublicIp is created after the instance exists.
// The price is a short unlocked window between the instance launching and the policy being
// attached (seconds, during the same deployment). The Elastic IP, NAT egress and
// VPC-endpoints-only modes have no such window (see Mode).
//
// Three ways to lock, from the widest to the narrowest:
//
//   - Everything locks every instance role in a scope, at synth time, in a Mode (Options);
//   - ForInstance and ForInstanceWithTrust lock one instance's role to its public IP (the mode
//     InstancePublicIP);
//   - New attaches a lock of explicit addresses and VPCs to any role.
//
// A lock can also admit what the whole app trusts (Trust: central egress prefixes, shared VPC
// endpoints), given to Everything in Options, to New in Props and to ForInstanceWithTrust; it is
// validated at the call and listed in the lock policy's Metadata (TrustMetadataKey) for the
// review. A role gets one lock named LockPolicyName: a second one, from ForInstance next to
// Everything or from two ForInstance calls, is an error that names both, never two policies of
// the same name that overwrite each other at deploy. Everything and ForInstance record the mode
// on the role they lock, as the tag contract.LockModeTagKey (LockModeTagKey), which the locker
// and the review read; roles imported into the app cannot be tagged.
//
// Problems found at synth time (an instance that will have no public IPv4 in InstancePublicIP
// mode, a VPC the mode needs but cannot find, an instance whose shape the aspect cannot read)
// are error annotations on the construct: `cdk synth` fails, names it and says what to do. The
// aspect never panics.
package lock

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// LockModeTagKey is the role tag that records the mode of the role's lock (a Mode value).
// Everything and ForInstance write it on the roles they lock when the role is a CfnRole of the
// lock's stack; the locker renders the same mode and the review shows it.
const LockModeTagKey = contract.LockModeTagKey

// TrustMetadataKey is the CloudFormation Metadata key, on a lock's AWS::IAM::Policy, that
// lists the Trust rendered into it ({"egressPrefixes": [...], "sharedVpcEndpoints": [...]}),
// so that the review can tell the app's trusted egress prefixes from the instance's own
// addresses. Written only when the lock trusts something.
const TrustMetadataKey = contract.TrustMetadataKey

// Trust is what the whole app trusts besides each instance's own network position, rendered
// into every lock it is given to (lockpolicy.Trust). Both lists widen the lock: every host whose
// calls leave through a trusted egress prefix passes the internet-path check, and every host
// that can reach a shared endpoint passes the endpoint-VPC check (the same-host check still
// applies there). Give the same Trust to every lock of an app, and to the locker and the
// detector, so that they all admit the same positions.
type Trust struct {
	// EgressPrefixes are public CIDRs (or single addresses) that instances' calls leave from
	// although they are not the instances' own: NAT gateways of a central egress VPC reached
	// over Transit Gateway, corporate proxies. They join every lock's aws:SourceIp list.
	// Literal values are validated (public, no /0, no host bits); tokens pass unvalidated.
	EgressPrefixes []string
	// SharedVPCEndpoints are the ids (vpce-...) of interface endpoints in a shared-services VPC
	// that instances of other VPCs call AWS through. Such a call carries the endpoint's VPC in
	// aws:SourceVpc, not the instance's, so the lock admits it by aws:SourceVpce. Literal values
	// must be endpoint ids; tokens pass unvalidated.
	SharedVPCEndpoints []string
}

// policy validates t (tokens pass) and returns it as the renderer's Trust, canonicalised.
func (t Trust) policy() (lockpolicy.Trust, error) {
	return lockpolicy.Trust(t).Validate(IsToken)
}

// Props configures a Lock.
type Props struct {
	// Role is the role to lock. Required.
	Role awsiam.IRole
	// SourceIPs are the public addresses (literal or CloudFormation tokens such as
	// Instance.InstancePublicIp()) from which the role may call AWS over the internet.
	SourceIPs []string
	// VPCs are VPC ids (literal or tokens) whose VPC endpoints the role may call through.
	VPCs []string
	// Trust is what the app trusts besides these addresses and VPCs (see Trust). Default:
	// nothing.
	Trust Trust
	// PolicyName is the name of the inline policy. Default: generated by CloudFormation. A role
	// can have one policy of a name: New fails when another lock of this app already put a
	// policy of the same name (LockPolicyName, say) on the role.
	PolicyName string
}

// Lock is the lock policy attached to a role.
type Lock interface {
	constructs.Construct
	// Policy is the AWS::IAM::Policy that carries the lock (Policy().Document() is the rendered
	// lock, with tokens still unresolved).
	Policy() awsiam.Policy
}

type lock struct {
	constructs.Construct
	policy awsiam.Policy
}

func (l *lock) Policy() awsiam.Policy { return l.policy }

// IsToken reports whether s holds an unresolved CDK token; such values are passed through to
// CloudFormation unvalidated, everything else is validated by the renderer.
func IsToken(s string) bool { return *awscdk.Token_IsUnresolved(jsii.String(s)) }

// New attaches a lock to props.Role. It fails, creating nothing, when the role is missing, the
// addresses or the trust are invalid (for example 0.0.0.0/0, which would make the lock
// pointless), or the role already has a lock of props.PolicyName from this app. New does not
// know a mode, so it does not tag the role (ForInstance and Everything do).
func New(scope constructs.Construct, id string, props *Props) (Lock, error) {
	if props == nil || props.Role == nil {
		return nil, fmt.Errorf("lock %q: Props.Role is required", id)
	}
	trust, err := props.Trust.policy()
	if err != nil {
		return nil, fmt.Errorf("lock %q: Props.Trust: %w", id, err)
	}
	doc, err := lockpolicy.Render(lockpolicy.Lock{SourceIPs: props.SourceIPs, VPCs: props.VPCs, Trust: trust},
		lockpolicy.Options{IsToken: IsToken})
	if err != nil {
		return nil, fmt.Errorf("lock %q: %w", id, err)
	}
	path := *scope.Node().Path() + "/" + id
	reg := registryOf(scope)
	role := refOfRole(props.Role)
	if props.PolicyName != "" {
		if err := reg.claimName(role, props.PolicyName, path); err != nil {
			return nil, fmt.Errorf("lock %q: %w", id, err)
		}
	}
	l := &lock{}
	constructs.NewConstruct_Override(l, scope, jsii.String(id))
	pp := &awsiam.PolicyProps{
		Document: awsiam.PolicyDocument_FromJson(doc.Map()),
		Roles:    &[]awsiam.IRole{props.Role},
	}
	if props.PolicyName != "" {
		pp.PolicyName = jsii.String(props.PolicyName)
	}
	l.policy = awsiam.NewPolicy(l, jsii.String("callerBasedPolicy"), pp)
	if !trust.Empty() {
		if cfn, ok := l.policy.Node().DefaultChild().(awscdk.CfnResource); ok && cfn != nil {
			cfn.AddMetadata(jsii.String(TrustMetadataKey), trustMetadata(trust))
		}
	}
	return l, nil
}

// ForInstance locks role to inst's public IP and to the VPC endpoints of vpc, as the inline
// policy LockPolicyName, in the mode InstancePublicIP; it is ForInstanceWithTrust with an
// empty Trust.
func ForInstance(scope constructs.Construct, id string, inst awsec2.Instance, role awsiam.IRole, vpc awsec2.IVpc) (Lock, error) {
	return ForInstanceWithTrust(scope, id, inst, role, vpc, Trust{})
}

// ForInstanceWithTrust locks role to inst's public IP, to the VPC endpoints of vpc and to what
// trust lists, as the inline policy LockPolicyName. The policy references inst's PublicIp
// attribute, so CloudFormation creates it after the instance.
//
// It fails, creating nothing, when inst will have no public IPv4 (a private or isolated subnet
// of vpc, a subnet that maps no public IPv4, AssociatePublicIpAddress false: lock such an
// instance with Everything in another Mode), when trust is invalid, and when the role already
// has a lock named LockPolicyName from this app (another ForInstance call, or New with that
// name; Everything reports the clash with ForInstance as an error annotation at synth). It
// tags the role with LockModeTagKey = InstancePublicIP when the role is a CfnRole of scope's
// stack; an imported role is locked but cannot be tagged, so the locker uses its default
// reading for it.
func ForInstanceWithTrust(scope constructs.Construct, id string, inst awsec2.Instance, role awsiam.IRole, vpc awsec2.IVpc, trust Trust) (Lock, error) {
	if inst == nil || vpc == nil {
		return nil, fmt.Errorf("lock %q: an instance and its VPC are required", id)
	}
	if role == nil {
		return nil, fmt.Errorf("lock %q: the role is required", id)
	}
	if _, err := trust.policy(); err != nil {
		return nil, fmt.Errorf("lock %q: trust: %w", id, err)
	}
	cfn := inst.Instance()
	nic, err := primaryInterface(awscdk.Stack_Of(cfn), cfn)
	if err != nil {
		return nil, fmt.Errorf("lock %q: %s: %w", id, *inst.Node().Path(), err)
	}
	place := newSubnetIndex([]awsec2.IVpc{vpc}).lookup(nic.subnetID)
	if err := checkPublicIPv4(*inst.Node().Path(), nic, place); err != nil {
		return nil, fmt.Errorf("lock %q: %w", id, err)
	}
	l, err := New(scope, id, &Props{
		Role:      role,
		SourceIPs: []string{hostCIDR(inst.InstancePublicIp())},
		VPCs:      []string{*vpc.VpcId()},
		Trust:     trust,
		// The locker's name for the same policy: on a role under its path it rewrites this lock
		// when the address changes, instead of adding a second one that would go stale.
		PolicyName: LockPolicyName,
	})
	if err != nil {
		return nil, err
	}
	tagMode(refOfRole(role), awscdk.Stack_Of(scope), InstancePublicIP)
	return l, nil
}

// trustMetadata is the value of TrustMetadataKey for a validated trust.
func trustMetadata(t lockpolicy.Trust) map[string]any {
	m := map[string]any{}
	if len(t.EgressPrefixes) > 0 {
		m["egressPrefixes"] = t.EgressPrefixes
	}
	if len(t.SharedVPCEndpoints) > 0 {
		m["sharedVpcEndpoints"] = t.SharedVPCEndpoints
	}
	return m
}

// tagMode records mode on role as the tag LockModeTagKey, when role is a CfnRole of stack
// (an imported role has no template to carry a tag; a role of another stack is that stack's).
func tagMode(role roleRef, stack awscdk.Stack, mode Mode) {
	if role.cfn == nil || *awscdk.Stack_Of(role.cfn).Node().Addr() != *stack.Node().Addr() {
		return
	}
	role.cfn.Tags().SetTag(jsii.String(LockModeTagKey), jsii.String(string(mode)), nil, nil)
}
