package organization

import (
	"errors"
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsorganizations"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// SCPProps configures the organisation-wide guard rail (lockpolicy.SCP: a Deny-only service
// control policy that applies to EC2 instance-role credentials only).
type SCPProps struct {
	// Targets are the roots, organizational units and accounts the policy is attached to.
	// Required: attach it where it must apply, not everywhere (the other way to exempt).
	Targets []string
	// Trust is the organisation's trusted egress prefixes and shared VPC endpoints (the app's
	// lock.Trust). Literal values only: the policy is sized exactly.
	Trust lock.Trust
	// RestrictInternet also denies internet calls made with instance credentials from outside
	// Trust.EgressPrefixes (which must then not be empty). Default false: the per-role lock
	// restricts internet calls, the SCP only VPC-endpoint calls.
	RestrictInternet bool
	// ExemptAccounts are 12-digit account ids the policy never denies.
	ExemptAccounts []string
	// ExemptRoleTag, when set, exempts principals whose role carries this tag with value
	// "true" (protect the tag: lockpolicy.SCPOptions.ExemptRoleTag says how). Default: none.
	ExemptRoleTag string
	// Name is the policy's name. Default "defenders-instance-credentials".
	Name string
}

// DefaultSCPName is the SCP's name.
const DefaultSCPName = "defenders-instance-credentials"

// RenderSCP returns the SCP document of props as compact JSON, exactly what NewSCP puts in
// Content, validated and within lockpolicy.MaxSCPSize.
func RenderSCP(props *SCPProps) (string, error) {
	if props == nil {
		return "", errors.New("organization: SCPProps is required")
	}
	doc, err := lockpolicy.SCP(lockpolicy.SCPOptions{
		Trust:            lockpolicy.Trust(props.Trust),
		RestrictInternet: props.RestrictInternet,
		ExemptAccounts:   props.ExemptAccounts,
		ExemptRoleTag:    props.ExemptRoleTag,
	})
	if err != nil {
		return "", fmt.Errorf("organization: SCPProps: %w", err)
	}
	b, err := doc.JSON()
	if err != nil {
		return "", fmt.Errorf("organization: SCPProps: %w", err)
	}
	return string(b), nil
}

// NewSCP creates the AWS::Organizations::Policy (SERVICE_CONTROL_POLICY) rendered by RenderSCP
// and attaches it to props.Targets. Content is the document as a JSON string, not an object:
// CloudFormation stores a string as given, so the size AWS Organizations counts (every
// character, 5,120 at most) is the size RenderSCP checked; an object would be re-serialised
// by CloudFormation. (AWS notes that drift detection does not compare string content.)
//
// Organizations accepts the policy from the management account, or from a delegated
// administrator that the management account's resource-based delegation policy allows to
// create and attach policies; SCP must be enabled as a policy type of the root. SCPs never
// restrict the management account or service-linked roles.
func NewSCP(scope constructs.Construct, id string, props *SCPProps) (awsorganizations.CfnPolicy, error) {
	content, err := RenderSCP(props)
	if err != nil {
		return nil, err
	}
	if len(props.Targets) == 0 {
		return nil, errors.New("organization: SCPProps.Targets: name at least one root, organizational unit or account to attach the SCP to")
	}
	for i, t := range props.Targets {
		if err := CheckPolicyTarget(t); err != nil {
			return nil, fmt.Errorf("organization: SCPProps.Targets[%d]: %w", i, err)
		}
	}
	if err := checkUnique("organization: SCPProps.Targets", props.Targets); err != nil {
		return nil, err
	}
	name := props.Name
	if name == "" {
		name = DefaultSCPName
	}
	if len(name) > 128 {
		return nil, fmt.Errorf("organization: SCPProps.Name %q: at most 128 characters", name)
	}
	pol := awsorganizations.NewCfnPolicy(scope, jsii.String(id), &awsorganizations.CfnPolicyProps{
		Name:        jsii.String(name),
		Description: jsii.String("Defenders: EC2 instance credentials are denied through VPC endpoints outside their instance's VPC and host"),
		Type:        jsii.String("SERVICE_CONTROL_POLICY"),
		// CDK's CfnPolicy accepts only an object here; the string goes in as an override below.
		Content:   map[string]any{},
		TargetIds: jsii.Strings(props.Targets...),
	})
	pol.AddPropertyOverride(jsii.String("Content"), jsii.String(content))
	return pol, nil
}
