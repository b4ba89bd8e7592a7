package lock

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// Exemptions: a role deliberately left unlocked, recorded as an acknowledgement of DEF-LOCK-1.

// ExemptMetadataKey is the CloudFormation Metadata key that records an exemption (and its reason)
// on a role; the review command and the guard read it.
const ExemptMetadataKey = contract.ExemptMetadataKey

// AcknowledgeMetadataKey is the CloudFormation Metadata key of acknowledgements: a list of
// {"rule": "DEF-...", "reason": "..."} entries that the review and the guard honour per rule
// and per resource.
const AcknowledgeMetadataKey = contract.AcknowledgeMetadataKey

// acknowledge returns the acknowledgement list existing (Metadata as read back from the
// resource, possibly nil) with rule acknowledged for reason, replacing an earlier reason of
// the same rule and keeping the other entries.
func acknowledge(existing any, rule, reason string) []any {
	var out []any
	list, _ := existing.([]any)
	for _, el := range list {
		if m, ok := el.(map[string]any); ok && m["rule"] == rule {
			continue
		}
		out = append(out, el)
	}
	return append(out, map[string]any{"rule": rule, "reason": reason})
}

// Exempt records that the role of c (an awsec2.Instance, an AutoScalingGroup or an awsiam.Role)
// is deliberately left unlocked, and why. The reason is written into the role's CloudFormation
// Metadata as an acknowledgement of rule DEF-LOCK-1 (AcknowledgeMetadataKey: a list of
// {"rule", "reason"} entries, kept with any other acknowledgements of the role) and, for
// readers of the older form, under ExemptMetadataKey, so that reviewers see it in the template
// and in the review report.
func Exempt(c constructs.IConstruct, reason string) error {
	reason = strings.TrimSpace(reason)
	if len(reason) < 10 {
		return fmt.Errorf("lock: exemption of %s needs a real reason (got %q)", *c.Node().Path(), reason)
	}
	role, err := roleOf(c)
	if err != nil {
		return fmt.Errorf("lock: exempt %s: %w", *c.Node().Path(), err)
	}
	cfn, ok := role.Node().DefaultChild().(awscdk.CfnResource)
	if !ok || cfn == nil {
		return fmt.Errorf("lock: exempt %s: the role is imported; exempt it where it is defined", *c.Node().Path())
	}
	cfn.AddMetadata(jsii.String(ExemptMetadataKey), reason)
	cfn.AddMetadata(jsii.String(AcknowledgeMetadataKey), acknowledge(cfn.GetMetadata(jsii.String(AcknowledgeMetadataKey)), contract.RuleUnlockedRole, reason))
	reg := registryOf(c)
	reg.mu.Lock()
	reg.exempt[refOfRole(role).key] = reason
	reg.mu.Unlock()
	return nil
}

// IsExempt returns the exemption reason of role, if any.
func IsExempt(role awsiam.IRole) (string, bool) {
	return registryOf(role).exemption(refOfRole(role))
}

func roleOf(c constructs.IConstruct) (awsiam.IRole, error) {
	switch x := c.(type) {
	case awsec2.Instance:
		return x.Role(), nil
	case awsautoscaling.AutoScalingGroup:
		return asgRole(x)
	case awsiam.IRole:
		return x, nil
	}
	return nil, fmt.Errorf("want an awsec2.Instance, an AutoScalingGroup or an awsiam.Role")
}

// roleRef identifies a role for the registry, whether it is an L2 Role, an imported role or a
// raw CfnRole: key is the address of its CfnRole when it has one (so an L2 role and the CfnRole
// under it are the same role), name is the token or literal the lock's Roles property takes.
type roleRef struct {
	key, path string
	name      *string
	cfn       awsiam.CfnRole // nil for imported roles
}

func refOfRole(r awsiam.IRole) roleRef {
	if cfn, ok := r.Node().DefaultChild().(awsiam.CfnRole); ok && cfn != nil {
		return roleRef{key: *cfn.Node().Addr(), path: *r.Node().Path(), name: r.RoleName(), cfn: cfn}
	}
	return roleRef{key: *r.Node().Addr(), path: *r.Node().Path(), name: r.RoleName()}
}

func refOfCfnRole(cfn awsiam.CfnRole) roleRef {
	return roleRef{key: *cfn.Node().Addr(), path: *cfn.Node().Path(), name: cfn.Ref(), cfn: cfn}
}

// exemption returns the exemption reason of a role: from Exempt, or from Metadata written by
// hand on its CfnRole.
func (r *registry) exemption(ref roleRef) (string, bool) {
	r.mu.Lock()
	reason, ok := r.exempt[ref.key]
	r.mu.Unlock()
	if ok {
		return reason, true
	}
	if ref.cfn != nil {
		if s, _ := ref.cfn.GetMetadata(jsii.String(ExemptMetadataKey)).(string); s != "" {
			return s, true
		}
	}
	return "", false
}
