// Package review turns a cloud assembly (cdk.out) of any CDK or
// CloudFormation app into a review report: every role that EC2 instances
// can assume, the lock that pins its credentials to the instance (an IAM
// policy of explicit Deny statements conditioned on aws:SourceIp,
// aws:SourceVpc and aws:VpcSourceIp), the instances using it with their
// IMDS setting and the ingress rules that reach them, and findings that
// say what to fix.
//
// Load reads the assembly, Analyze builds the Report, and the Report
// renders itself as Markdown (for a pull request) or JSON (for machines).
package review

import (
	"encoding/json"
	"fmt"
	"io"
)

// Severity ranks a finding.
type Severity string

// Finding severities. Errors fail the review (exit code 1 of cmd/review).
const (
	// SeverityError is a problem that must be fixed or exempted.
	SeverityError Severity = "error"
	// SeverityWarning is a problem worth a second look.
	SeverityWarning Severity = "warning"
)

// IMDS settings of an instance.
const (
	// IMDSv2Required means HttpTokens is "required": session tokens only.
	IMDSv2Required = "IMDSv2 required"
	// IMDSv1Allowed means IMDSv1 requests are answered (HttpTokens is
	// "optional", unset or not a literal).
	IMDSv1Allowed = "IMDSv1 allowed"
	// IMDSDisabled means HttpEndpoint is "disabled": no metadata service.
	IMDSDisabled = "IMDS disabled"
	// IMDSv1Possible means the setting depends on a parameter or condition and
	// the review cannot tell what the template's defaults give; some values
	// allow IMDSv1 (finding DEF-IMDS-2).
	IMDSv1Possible = "IMDSv1 possible"
	// IMDSUnknown means the launch template or launch configuration is
	// outside the assembly: the setting is judged where it is defined.
	IMDSUnknown = "IMDS unknown"
)

// Lock modes: how a role's internet calls are pinned.
const (
	// ModeInstanceIP locks to the public IP of an instance (Fn::GetAtt
	// Instance.PublicIp).
	ModeInstanceIP = "instance public IP"
	// ModeElasticIP locks to an Elastic IP (AWS::EC2::EIP).
	ModeElasticIP = "Elastic IP"
	// ModeNATEgress locks to the Elastic IP of a NAT gateway.
	ModeNATEgress = "NAT egress"
	// ModeAddresses locks to literal addresses or values the review
	// cannot trace to a resource.
	ModeAddresses = "addresses"
	// ModeEndpointsOnly denies every internet call from the instances' own
	// addresses: VPC endpoints only (with ModeTrustedEgress, calls from the
	// app's trusted egress prefixes still pass).
	ModeEndpointsOnly = "VPC endpoints only"
	// ModeTrustedEgress admits the app's trusted egress prefixes (central
	// NAT gateways, proxies), which the lock's policy declares in its
	// Metadata (TrustKey).
	ModeTrustedEgress = "trusted egress"
	// ModeNone means the role has no lock.
	ModeNone = "none"
)

// Lock statuses.
const (
	// LockLocked means both internet calls and VPC endpoint calls are
	// restricted.
	LockLocked = "locked"
	// LockPartial means lock statements exist but leave a path open.
	LockPartial = "partial"
	// LockUnlocked means no lock statement is attached to the role.
	LockUnlocked = "unlocked"
)

// Report is the result of a review.
type Report struct {
	// Source is the assembly directory or template file reviewed.
	Source string `json:"source"`
	// Stacks lists the stacks reviewed.
	Stacks []StackInfo `json:"stacks"`
	// Roles lists every role EC2 can assume, sorted by stack and path.
	Roles []Role `json:"roles"`
	// OtherInstances lists instances and Auto Scaling groups whose role is
	// not an EC2 role of the assembly (no profile, or one defined elsewhere).
	OtherInstances []Instance `json:"otherInstances"`
	// Findings lists the problems, errors first; acknowledged findings are not
	// among them.
	Findings []Finding `json:"findings"`
	// Acknowledged lists the findings acknowledged by their resource's
	// Metadata (AcknowledgeKey), each with its reason; numbered A1, A2, ...
	// and counted neither as errors nor as warnings.
	Acknowledged []Finding `json:"acknowledged"`
	// Errors counts the error findings.
	Errors int `json:"errors"`
	// Warnings counts the warning findings.
	Warnings int `json:"warnings"`
}

// StackInfo names one reviewed stack.
type StackInfo struct {
	// Name is the stack's display name.
	Name string `json:"name"`
	// File is the template, relative to the assembly directory.
	File string `json:"file"`
	// Parent is the parent stack of a nested stack.
	Parent string `json:"parent,omitempty"`
}

// Role is an AWS::IAM::Role whose trust policy allows ec2.amazonaws.com.
type Role struct {
	// Stack is the stack that defines the role.
	Stack string `json:"stack"`
	// LogicalID is the role's logical id.
	LogicalID string `json:"logicalId"`
	// Path is the construct path (Metadata aws:cdk:path without a trailing
	// "/Resource"), or "" for templates not written by the CDK.
	Path string `json:"path,omitempty"`
	// ManagedPolicies are the role's ManagedPolicyArns, rendered readably;
	// customer managed policies of the assembly by name.
	ManagedPolicies []string `json:"managedPolicies"`
	// Instances are the instances and Auto Scaling groups using the role.
	Instances []Instance `json:"instances"`
	// Lock describes the role's lock.
	Lock Lock `json:"lock"`
	// LockModeTag is the value of the role's tag LockModeTagKey: the mode the
	// Defenders lock construct locked the role in, which the locker renders;
	// "" when the role has no such tag.
	LockModeTag string `json:"lockModeTag,omitempty"`
	// Exemption is the reason of the role's acknowledgement of DEF-LOCK-1
	// (Metadata "defenders:acknowledge", or the older "defenders:exempt"), if any.
	Exemption string `json:"exemption,omitempty"`
	// Findings are the ids of the findings about the role or its instances.
	Findings []string `json:"findings"`

	res *resource
}

// Instance is an AWS::EC2::Instance or an AWS::AutoScaling::AutoScalingGroup.
type Instance struct {
	// Stack is the stack that defines the instance.
	Stack string `json:"stack"`
	// LogicalID is the instance's logical id.
	LogicalID string `json:"logicalId"`
	// Path is the construct path, if known.
	Path string `json:"path,omitempty"`
	// Kind is "instance" or "Auto Scaling group".
	Kind string `json:"kind"`
	// LaunchTemplate is the launch template (or launch configuration)
	// logical id, if any.
	LaunchTemplate string `json:"launchTemplate,omitempty"`
	// InstanceProfile is the instance profile, rendered readably.
	InstanceProfile string `json:"instanceProfile,omitempty"`
	// IMDS is IMDSv2Required, IMDSv1Allowed, IMDSDisabled, IMDSv1Possible or
	// IMDSUnknown, as deployed with the template's defaults.
	IMDS string `json:"imds"`
	// SecurityGroups are the instance's security groups; groups outside
	// the assembly are marked "(unresolved)" or "(not in this assembly)".
	SecurityGroups []string `json:"securityGroups"`
	// Ingress lists the ingress rules of the instance's security groups.
	Ingress []Ingress `json:"ingress"`
	// Findings are the ids of the findings about this instance.
	Findings []string `json:"findings"`
}

// Ingress is one ingress rule of a security group.
type Ingress struct {
	// SecurityGroup is the group the rule belongs to (its construct path
	// or stack/logical id).
	SecurityGroup string `json:"securityGroup"`
	// Stack and Resource locate the rule: the security group, or the
	// standalone AWS::EC2::SecurityGroupIngress resource.
	Stack string `json:"stack"`
	// Resource is the logical id of the resource declaring the rule.
	Resource string `json:"resource"`
	// Protocol is "tcp", "udp", "icmp", "all" or the raw IpProtocol.
	Protocol string `json:"protocol"`
	// Ports is "22", "1024-2047", "all" or a rendered intrinsic.
	Ports string `json:"ports"`
	// Source is the CIDR, prefix list id or source security group.
	Source string `json:"source"`
	// SourceType is "cidr", "prefix list", "security group" or "none".
	SourceType string `json:"sourceType"`
	// Description is the rule's description, if any.
	Description string `json:"description,omitempty"`
}

// Lock describes the lock statements attached to a role. A lock statement is
// an explicit Deny of every action ("*", or NotAction of single named
// actions) on every resource ("*"), whose conditions only test the network
// origin of the call (aws:SourceIp, aws:SourceVpc, aws:VpcSourceIp and the
// instance keys, with Null and aws:ViaAWSService scoping); see lock.go for
// the exact criterion.
type Lock struct {
	// Status is LockLocked, LockPartial or LockUnlocked.
	Status string `json:"status"`
	// Modes lists the lock modes (ModeInstanceIP, ...), or ModeNone.
	Modes []string `json:"modes"`
	// Policies lists the policies holding lock statements.
	Policies []string `json:"policies"`
	// Statements lists the lock statements by Sid.
	Statements []string `json:"statements"`
	// SourceIPs are the public addresses calls may come from (aws:SourceIp).
	SourceIPs []LockedValue `json:"sourceIps"`
	// VPCs are the VPCs whose endpoints calls may come through (aws:SourceVpc).
	VPCs []LockedValue `json:"vpcs"`
	// SharedVPCEndpoints are the VPC endpoints (aws:SourceVpce) calls may
	// come through whatever VPC they are in: the shared-services endpoints
	// the app trusts.
	SharedVPCEndpoints []LockedValue `json:"sharedVpcEndpoints,omitempty"`
	// PrivateIPs are private source addresses for endpoint calls
	// (aws:VpcSourceIp), when listed literally.
	PrivateIPs []LockedValue `json:"privateIps,omitempty"`
	// InternetDenied is true when every internet call is denied.
	InternetDenied bool `json:"internetDenied"`
	// EndpointsDenied is true when every VPC endpoint call is denied.
	EndpointsDenied bool `json:"endpointsDenied"`
	// SameHostOnly is true when endpoint calls must come from the host the
	// credentials were delivered to (aws:Ec2InstanceSourcePrivateIPv4).
	SameHostOnly bool `json:"sameHostOnly"`
	// ExceptActions are the actions a lock statement's NotAction leaves out:
	// stolen credentials can call them from anywhere.
	ExceptActions []string `json:"exceptActions,omitempty"`
}

// LockedValue is one value a lock allows.
type LockedValue struct {
	// Value is the value as written, rendered readably.
	Value string `json:"value"`
	// Mode is the lock mode the value stands for (source IPs only).
	Mode string `json:"mode,omitempty"`
	// RefersTo says what the value resolves to, when known.
	RefersTo string `json:"refersTo,omitempty"`
}

// Finding is one problem, with a message that says how to fix it.
type Finding struct {
	// ID is "E1", "E2", ... for errors, "W1", ... for warnings and "A1", ...
	// for acknowledged findings.
	ID string `json:"id"`
	// Rule is the id of the rule that found it (see Rules).
	Rule string `json:"rule"`
	// Severity is SeverityError or SeverityWarning (the rule's level).
	Severity Severity `json:"severity"`
	// Stack is the stack of the resource at fault.
	Stack string `json:"stack"`
	// Resource is the logical id of the resource at fault.
	Resource string `json:"resource"`
	// Message says what is wrong and how to fix it.
	Message string `json:"message"`
	// Reason is why the finding is acknowledged (acknowledged findings only).
	Reason string `json:"reason,omitempty"`

	subjects []*resource
}

// HasErrors reports whether the review found an error.
func (r *Report) HasErrors() bool { return r.Errors > 0 }

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("review: write JSON: %w", err)
	}
	return nil
}

// Review loads the assembly or template at path and analyzes it.
func Review(path string) (*Report, error) {
	a, err := Load(path)
	if err != nil {
		return nil, err
	}
	return Analyze(a), nil
}
