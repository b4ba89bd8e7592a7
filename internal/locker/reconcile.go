package locker

import (
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// stateChange locks the roles of the instance in ev.
func (r *run) stateChange(ctx context.Context, ev Event) error {
	cfg := &r.l.cfg
	var inst *ec2types.Instance
	err := r.call(ctx, "ec2:DescribeInstances", true, func(ctx context.Context) error {
		out, err := cfg.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{ev.InstanceID}})
		if err != nil {
			return err
		}
		for _, res := range out.Reservations {
			for i := range res.Instances {
				if deref(res.Instances[i].InstanceId) == ev.InstanceID {
					inst = &res.Instances[i]
				}
			}
		}
		return nil
	})
	notFound := isNotFound(err)
	if err != nil && !notFound {
		return fmt.Errorf("locker: describe instance %s: %w", ev.InstanceID, err)
	}
	var profileARN string
	if inst != nil && inst.IamInstanceProfile != nil {
		profileARN = deref(inst.IamInstanceProfile.Arn)
	}
	if profileARN == "" {
		gone := inst == nil || ev.State == "terminated" || ev.State == "shutting-down"
		if !gone {
			r.report.Notes = append(r.report.Notes, fmt.Sprintf("instance %s has no instance profile: nothing to lock", ev.InstanceID))
			return nil
		}
		// The instance is gone or leaving without telling us its role; its
		// address must still be taken out of whichever lock lists it.
		r.report.Notes = append(r.report.Notes, fmt.Sprintf(
			"instance %s (%s) is gone or shows no instance profile: reconciling every managed role instead", ev.InstanceID, ev.State))
		return r.reconcileAll(ctx)
	}
	roles, err := r.profileRoles(ctx, profileARN)
	if err != nil {
		return err
	}
	if len(roles) == 0 {
		r.report.Notes = append(r.report.Notes, fmt.Sprintf("instance profile %s has no role: nothing to lock", profileARN))
	}
	for _, role := range roles {
		if !r.l.managed(deref(role.Path)) {
			r.report.Skipped = append(r.report.Skipped, Skip{Role: deref(role.RoleName), Reason: "not managed: path does not start with " + r.l.cfg.RolePath})
			continue
		}
		r.report.Results = append(r.report.Results, r.reconcileRole(ctx, deref(role.RoleName)))
	}
	return nil
}

// reconcileAll reconciles every managed role: every role under
// Config.RolePath.
func (r *run) reconcileAll(ctx context.Context) error {
	cfg := &r.l.cfg
	done := map[string]bool{}
	var marker *string
	for {
		var out *iam.ListRolesOutput
		err := r.call(ctx, "iam:ListRoles", false, func(ctx context.Context) (err error) {
			out, err = cfg.IAM.ListRoles(ctx, &iam.ListRolesInput{PathPrefix: aws.String(cfg.RolePath), Marker: marker})
			return err
		})
		if err != nil {
			return fmt.Errorf("locker: list roles under %s: %w", cfg.RolePath, err)
		}
		for _, role := range out.Roles {
			name := deref(role.RoleName)
			if done[name] || !r.l.managed(deref(role.Path)) {
				continue
			}
			done[name] = true
			r.report.Results = append(r.report.Results, r.reconcileRole(ctx, name))
		}
		if !out.IsTruncated || out.Marker == nil {
			break
		}
		marker = out.Marker
	}
	return nil
}

// reconcileRole computes, compares, writes and verifies one role's lock.
func (r *run) reconcileRole(ctx context.Context, role string) Result {
	res := Result{Role: role, Addresses: []string{}, SourceIPs: []string{}, VPCs: []string{}}
	fail := func(err error) Result {
		res.Action, res.Err, res.Error = ActionError, err, err.Error()
		return res
	}
	st, err := r.describeRole(ctx, role)
	if err != nil {
		return fail(err)
	}
	pols, err := r.readPolicies(ctx, role)
	if err != nil {
		return fail(err)
	}
	res.Notes = pols.notes
	res.Budget = lockpolicy.MaxRolePolicySize - pols.othersSize
	current := pols.current
	for {
		res.Passes++
		in := st.input()
		res.Instances = st.instances
		res.Addresses = prefixStrings(in.addrs)
		cands, err := plan(in, LockedVPCs(current))
		if err != nil {
			return fail(err)
		}
		first := slices.IndexFunc(cands, func(c candidate) bool { return c.size <= res.Budget })
		if first < 0 {
			return fail(fmt.Errorf("locker: lock role %s: no lock fits: the other inline policies use %d of %d characters, the smallest lock needs %d",
				role, pols.othersSize, lockpolicy.MaxRolePolicySize, cands[len(cands)-1].size))
		}
		if !samePolicy(current, cands[first].doc) {
			// About to write: not while CloudFormation deletes the role.
			skip, err := r.checkStack(ctx, role, &res, pols.exists || current != nil, in.total > 0)
			if err != nil {
				return fail(err)
			}
			if skip {
				return res
			}
		}
		chosen, wrote, err := r.write(ctx, role, cands[first:], current)
		res.Mode, res.Reason = chosen.mode, chosen.reason
		res.SourceIPs, res.VPCs, res.Size = chosen.sourceIPs, chosen.vpcs, chosen.size
		if err != nil {
			return fail(err)
		}
		res.Written = res.Written || wrote
		switch {
		case chosen.fallback:
			res.Action = ActionFallback
		case res.Written:
			res.Action = ActionWritten
		default:
			res.Action = ActionUnchanged
		}
		if !wrote {
			return res
		}
		current = chosen.doc
		if res.Passes >= r.l.cfg.MaxPasses {
			res.Notes = append(res.Notes, fmt.Sprintf("instances kept changing during %d passes; the next event or schedule will catch up", res.Passes))
			return res
		}
		// Verify: another invocation may have written a lock computed from
		// an older view between our describe and our write. Re-describe; if
		// the instances changed, compute and write again.
		next, err := r.describeRole(ctx, role)
		if err != nil {
			res.Action = ActionError
			res.Err = fmt.Errorf("locker: verify lock of role %s after writing it: %w", role, err)
			res.Error = res.Err.Error()
			return res
		}
		if next.input().equal(in) {
			return res
		}
		st = next
	}
}
