package locker

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// profileName returns the name of an instance profile ARN
// (arn:aws:iam::123456789012:instance-profile/path/name).
func profileName(arn string) (string, error) {
	_, rest, ok := strings.Cut(arn, ":instance-profile/")
	if !ok || rest == "" || strings.HasSuffix(rest, "/") {
		return "", fmt.Errorf("locker: %q is not an instance profile ARN", arn)
	}
	return rest[strings.LastIndex(rest, "/")+1:], nil
}

// profileRoles returns the roles of an instance profile. retryNotFound
// retries NoSuchEntity (a profile that is being created); a caller that
// knows the profile may be gone passes false and checks isNotFound.
func (r *run) profileRoles(ctx context.Context, arn string, retryNotFound bool) ([]iamtypes.Role, error) {
	name, err := profileName(arn)
	if err != nil {
		return nil, err
	}
	var out *iam.GetInstanceProfileOutput
	err = r.call(ctx, "iam:GetInstanceProfile", retryNotFound, func(ctx context.Context) (err error) {
		out, err = r.l.cfg.IAM.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String(name)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("locker: get instance profile %s: %w", name, err)
	}
	if out.InstanceProfile == nil {
		return nil, fmt.Errorf("locker: get instance profile %s: empty answer", name)
	}
	return out.InstanceProfile.Roles, nil
}

// describeInstance returns one instance, or nil if EC2 does not know it
// (after Config.NotFoundAttempts attempts: a brand-new instance may not be
// visible yet).
func (r *run) describeInstance(ctx context.Context, id string) (*ec2types.Instance, error) {
	var inst *ec2types.Instance
	err := r.call(ctx, "ec2:DescribeInstances", true, func(ctx context.Context) error {
		out, err := r.l.cfg.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
		if err != nil {
			return err
		}
		for _, res := range out.Reservations {
			for i := range res.Instances {
				if deref(res.Instances[i].InstanceId) == id {
					inst = &res.Instances[i]
				}
			}
		}
		return nil
	})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("locker: describe instance %s: %w", id, err)
	}
	return inst, nil
}

// describeInstances pages through DescribeInstances with filters.
func (r *run) describeInstances(ctx context.Context, filters []ec2types.Filter, each func(ec2types.Instance)) error {
	var token *string
	for {
		var out *ec2.DescribeInstancesOutput
		err := r.call(ctx, "ec2:DescribeInstances", false, func(ctx context.Context) (err error) {
			out, err = r.l.cfg.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{
				Filters: filters, NextToken: token, MaxResults: aws.Int32(1000),
			})
			return err
		})
		if err != nil {
			return err
		}
		for _, res := range out.Reservations {
			for _, in := range res.Instances {
				each(in)
			}
		}
		if out.NextToken == nil || *out.NextToken == "" {
			return nil
		}
		token = out.NextToken
	}
}

// profileFilterChunk bounds the values of one EC2 filter.
const profileFilterChunk = 100

// roleState is everything about a role's instances that shapes its lock.
type roleState struct {
	profiles  []string
	instances []Instance
	notes     []string
}

// describeRole finds the instances of every instance profile of a role,
// without the instances the event says are leaving, and, for a role in
// nat-egress mode, the NAT gateway addresses of the live ones.
func (r *run) describeRole(ctx context.Context, role string, spec lockSpec) (roleState, error) {
	var st roleState
	var marker *string
	for {
		var out *iam.ListInstanceProfilesForRoleOutput
		err := r.call(ctx, "iam:ListInstanceProfilesForRole", true, func(ctx context.Context) (err error) {
			out, err = r.l.cfg.IAM.ListInstanceProfilesForRole(ctx, &iam.ListInstanceProfilesForRoleInput{
				RoleName: aws.String(role), Marker: marker,
			})
			return err
		})
		if err != nil {
			return st, fmt.Errorf("locker: list instance profiles of role %s: %w", role, err)
		}
		for _, p := range out.InstanceProfiles {
			if arn := deref(p.Arn); arn != "" {
				st.profiles = append(st.profiles, arn)
			}
		}
		if !out.IsTruncated || out.Marker == nil {
			break
		}
		marker = out.Marker
	}
	slices.Sort(st.profiles)
	st.profiles = slices.Compact(st.profiles)
	for chunk := range slices.Chunk(st.profiles, profileFilterChunk) {
		filters := []ec2types.Filter{
			{Name: aws.String("iam-instance-profile.arn"), Values: chunk},
			{Name: aws.String("instance-state-name"), Values: lockedStates},
		}
		err := r.describeInstances(ctx, filters, func(in ec2types.Instance) {
			if !r.gone[deref(in.InstanceId)] {
				st.instances = append(st.instances, InstanceFromEC2(in))
			}
		})
		if err != nil {
			return st, fmt.Errorf("locker: describe instances of role %s: %w", role, err)
		}
	}
	slices.SortFunc(st.instances, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	st.instances = slices.CompactFunc(st.instances, func(a, b Instance) bool { return a.ID == b.ID })
	if spec.mode == lockpolicy.ModeNATEgress {
		notes, err := r.natEgress(ctx, st.instances)
		if err != nil {
			return st, fmt.Errorf("locker: NAT gateways of role %s: %w", role, err)
		}
		st.notes = notes
	}
	return st, nil
}

// rolePolicies is what a role's inline policies mean to the locker.
type rolePolicies struct {
	current    []byte // the lock now in place, nil if none or unreadable
	exists     bool   // a lock policy is in place, readable or not
	othersSize int    // IAM characters used by the other inline policies
	notes      []string
}

// readPolicies reads every inline policy of a role.
func (r *run) readPolicies(ctx context.Context, role string) (rolePolicies, error) {
	var rp rolePolicies
	var names []string
	var marker *string
	for {
		var out *iam.ListRolePoliciesOutput
		err := r.call(ctx, "iam:ListRolePolicies", true, func(ctx context.Context) (err error) {
			out, err = r.l.cfg.IAM.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String(role), Marker: marker})
			return err
		})
		if err != nil {
			return rp, fmt.Errorf("locker: list inline policies of role %s: %w", role, err)
		}
		names = append(names, out.PolicyNames...)
		if !out.IsTruncated || out.Marker == nil {
			break
		}
		marker = out.Marker
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		var out *iam.GetRolePolicyOutput
		err := r.call(ctx, "iam:GetRolePolicy", false, func(ctx context.Context) (err error) {
			out, err = r.l.cfg.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(name)})
			return err
		})
		if errorCode(err) == codeNoSuchEntity {
			continue // deleted since it was listed
		}
		if err != nil {
			return rp, fmt.Errorf("locker: get inline policy %s of role %s: %w", name, role, err)
		}
		if name == r.l.cfg.PolicyName {
			rp.exists = true
		}
		doc, err := DecodePolicyDocument(deref(out.PolicyDocument))
		if err != nil {
			if name == r.l.cfg.PolicyName {
				rp.notes = append(rp.notes, fmt.Sprintf("the current %s policy cannot be read (%v): it will be replaced", name, err))
				continue
			}
			return rp, fmt.Errorf("locker: inline policy %s of role %s: %w", name, role, err)
		}
		if name == r.l.cfg.PolicyName {
			rp.current = doc
			continue
		}
		rp.othersSize += lockpolicy.SizeOf(doc)
		if looksLikeLock(doc) {
			rp.notes = append(rp.notes, fmt.Sprintf(
				"inline policy %s also carries lock statements; the locker does not maintain it, so its addresses can go stale and deny the instances: name the construct's lock %q",
				name, r.l.cfg.PolicyName))
		}
	}
	return rp, nil
}
