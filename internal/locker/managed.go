package locker

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// DenyAllManagedPolicy is the name of the AWS managed policy of last resort:
// {"Effect":"Deny","Action":"*","Resource":"*"}. The locker attaches it to
// a managed role whose other inline policies leave no room for even
// lockpolicy.DenyAll (see "Size fallback" in the package doc).
const DenyAllManagedPolicy = "AWSDenyAll"

// partitionPattern is the shape of an AWS partition (aws, aws-cn,
// aws-us-gov, aws-iso, ...).
var partitionPattern = regexp.MustCompile(`^aws(-[a-z]+)*$`)

// DenyAllPolicyARN returns the ARN of AWSDenyAll in the partition of a role
// ARN (arn:aws-cn:iam::123456789012:role/defenders/web gives
// arn:aws-cn:iam::aws:policy/AWSDenyAll).
func DenyAllPolicyARN(roleARN string) (string, error) {
	parts := strings.SplitN(roleARN, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "iam" || !partitionPattern.MatchString(parts[1]) ||
		!strings.HasPrefix(parts[5], "role/") {
		return "", fmt.Errorf("locker: %q is not a role ARN: cannot tell its partition", roleARN)
	}
	return "arn:" + parts[1] + ":iam::aws:policy/" + DenyAllManagedPolicy, nil
}

// denyAllAttached reports whether AWSDenyAll is attached to a role.
func (r *run) denyAllAttached(ctx context.Context, ref roleRef) (bool, error) {
	arn, err := DenyAllPolicyARN(ref.arn)
	if err != nil {
		return false, err
	}
	var marker *string
	for {
		var out *iam.ListAttachedRolePoliciesOutput
		err := r.call(ctx, "iam:ListAttachedRolePolicies", true, func(ctx context.Context) (err error) {
			out, err = r.l.cfg.IAM.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String(ref.name), Marker: marker})
			return err
		})
		if err != nil {
			return false, fmt.Errorf("locker: list managed policies of role %s: %w", ref.name, err)
		}
		for _, p := range out.AttachedPolicies {
			if deref(p.PolicyArn) == arn {
				return true, nil
			}
		}
		if !out.IsTruncated || out.Marker == nil {
			return false, nil
		}
		marker = out.Marker
	}
}

// attachDenyAll locks a role with AWSDenyAll when no inline lock fits (why
// says what happened): unless it is attached already, it asks
// CloudFormation first (attaching a policy to a role being deleted makes
// DeleteRole fail like a written lock does) and attaches it. The role is a
// fallback either way; if the attach fails it is an error (and stays
// without a lock: the alarm must fire).
func (r *run) attachDenyAll(ctx context.Context, ref roleRef, res Result, attached, lockExists, hasInstances bool, why string) Result {
	res.Mode, res.Size = ModeManagedDenyAll, 0
	res.SourceIPs, res.VPCs = []string{}, []string{}
	arn, err := DenyAllPolicyARN(ref.arn)
	if err != nil {
		res.Action, res.Err, res.Error = ActionError, err, err.Error()
		return res
	}
	res.Reason = fmt.Sprintf("%s: %s is attached instead; it denies every call, AWS services' on the role's behalf too, until an inline lock fits again and the locker detaches it", why, arn)
	if attached {
		res.Action = ActionFallback
		return res
	}
	skip, err := r.checkStack(ctx, ref.name, &res, lockExists, hasInstances)
	if err != nil {
		res.Action, res.Err, res.Error = ActionError, err, err.Error()
		return res
	}
	if skip {
		return res
	}
	err = r.call(ctx, "iam:AttachRolePolicy", true, func(ctx context.Context) error {
		_, err := r.l.cfg.IAM.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String(ref.name), PolicyArn: aws.String(arn)})
		return err
	})
	if err != nil {
		res.Action = ActionError
		res.Err = fmt.Errorf("locker: role %s has no lock (%s) and attaching %s failed: %w", ref.name, why, arn, err)
		res.Error = res.Err.Error()
		return res
	}
	res.Action, res.Attached = ActionFallback, true
	return res
}

// detachDenyAll removes AWSDenyAll from a role whose inline lock is in
// place again. A policy already detached is not an error.
func (r *run) detachDenyAll(ctx context.Context, ref roleRef) error {
	arn, err := DenyAllPolicyARN(ref.arn)
	if err != nil {
		return err
	}
	err = r.call(ctx, "iam:DetachRolePolicy", false, func(ctx context.Context) error {
		_, err := r.l.cfg.IAM.DetachRolePolicy(ctx, &iam.DetachRolePolicyInput{RoleName: aws.String(ref.name), PolicyArn: aws.String(arn)})
		return err
	})
	if err != nil && errorCode(err) != codeNoSuchEntity {
		return fmt.Errorf("locker: detach %s from role %s (its inline lock is in place): %w", arn, ref.name, err)
	}
	return nil
}
