package locker

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/internal/lockpolicy/ec2addr"
)

// roleRef names a managed role; its ARN gives the partition of AWSDenyAll.
type roleRef struct {
	name, arn string
}

func refOf(role iamtypes.Role) roleRef {
	return roleRef{name: deref(role.RoleName), arn: deref(role.Arn)}
}

// stateChange locks the roles of the instance in ev. An instance that is
// shutting down or terminated is left out of every lock computed in this
// invocation, whatever DescribeInstances still says of it.
func (r *run) stateChange(ctx context.Context, ev Event) error {
	leaving := ev.State == "shutting-down" || ev.State == "terminated"
	if leaving {
		r.gone[ev.InstanceID] = true
	}
	_, err := r.instanceChanged(ctx, ev.InstanceID, leaving, ev.State)
	return err
}

// instanceChanged reconciles the managed roles of an instance's profile. An
// instance EC2 does not know makes every managed role reconciled. An
// instance that is leaving (shutting-down, terminated) and shows no
// profile any more has its known addresses taken out of whichever lock
// lists them (reconcileListing); when it shows no address either, nothing
// is done: see "Which instances" in the package doc. It returns the
// instance as described (nil when unknown).
func (r *run) instanceChanged(ctx context.Context, id string, leaving bool, why string) (*ec2types.Instance, error) {
	inst, err := r.describeInstance(ctx, id)
	if err != nil {
		return nil, err
	}
	if inst == nil {
		r.note("instance %s (%s) is unknown to EC2: reconciling every managed role instead", id, why)
		return nil, r.reconcileAll(ctx)
	}
	var profileARN string
	if inst.IamInstanceProfile != nil {
		profileARN = deref(inst.IamInstanceProfile.Arn)
	}
	if profileARN != "" {
		return inst, r.lockProfile(ctx, profileARN, true)
	}
	if !leaving {
		r.note("instance %s has no instance profile: nothing to lock", id)
		return inst, nil
	}
	addrs := uniquePrefixes(ec2addr.Of(*inst).SourcePrefixes())
	if len(addrs) == 0 {
		r.note("instance %s (%s) shows neither an instance profile nor a public address: its role was reconciled at shutting-down, "+
			"while EC2 still showed its profile; the schedule is the backstop", id, why)
		return inst, nil
	}
	r.note("instance %s (%s) shows no instance profile: reconciling the managed roles whose lock lists %v", id, why, prefixStrings(addrs))
	return inst, r.reconcileListing(ctx, prefixStrings(addrs))
}

// lockProfile reconciles the managed roles of an instance profile and
// records the others as skipped. retryNotFound is false for a profile that
// may be gone (one a CloudTrail event names): it is then noted and left.
func (r *run) lockProfile(ctx context.Context, profileARN string, retryNotFound bool) error {
	roles, err := r.profileRoles(ctx, profileARN, retryNotFound)
	if !retryNotFound && isNotFound(err) {
		r.note("instance profile %s no longer exists: nothing to lock", profileARN)
		return nil
	}
	if err != nil {
		return err
	}
	if len(roles) == 0 {
		r.note("instance profile %s has no role: nothing to lock", profileARN)
	}
	for _, role := range roles {
		if !r.l.managed(deref(role.Path)) {
			name := deref(role.RoleName)
			if !slices.ContainsFunc(r.report.Skipped, func(s Skip) bool { return s.Role == name }) {
				r.report.Skipped = append(r.report.Skipped, Skip{Role: name, Reason: "not managed: path does not start with " + r.l.cfg.RolePath})
			}
			continue
		}
		r.reconcileOnce(ctx, refOf(role))
	}
	return nil
}

// reconcileOnce reconciles a role unless this invocation already did.
func (r *run) reconcileOnce(ctx context.Context, ref roleRef) {
	if r.done[ref.name] {
		return
	}
	r.done[ref.name] = true
	r.report.Results = append(r.report.Results, r.reconcileRole(ctx, ref))
}

// managedRoles calls each for every managed role: every role ListRoles
// returns under Config.RolePath.
func (r *run) managedRoles(ctx context.Context, each func(iamtypes.Role)) error {
	cfg := &r.l.cfg
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
			if r.l.managed(deref(role.Path)) {
				each(role)
			}
		}
		if !out.IsTruncated || out.Marker == nil {
			return nil
		}
		marker = out.Marker
	}
}

// reconcileAll reconciles every managed role: every role under
// Config.RolePath.
func (r *run) reconcileAll(ctx context.Context) error {
	return r.managedRoles(ctx, func(role iamtypes.Role) { r.reconcileOnce(ctx, refOf(role)) })
}

// reconcileRole computes, compares, writes and verifies one role's lock.
func (r *run) reconcileRole(ctx context.Context, ref roleRef) Result {
	role := ref.name
	res := Result{Role: role, Addresses: []string{}, SourceIPs: []string{}, VPCs: []string{}}
	fail := func(err error) Result {
		res.Action, res.Err, res.Error = ActionError, err, err.Error()
		return res
	}
	spec, err := r.lockSpec(ctx, role)
	if err != nil {
		return fail(err)
	}
	res.LockMode = lockpolicy.Mode(spec.tag)
	st, err := r.describeRole(ctx, role, spec)
	if err != nil {
		return fail(err)
	}
	pols, err := r.readPolicies(ctx, role)
	if err != nil {
		return fail(err)
	}
	res.Notes = append(pols.notes, st.notes...)
	res.Budget = lockpolicy.MaxRolePolicySize - pols.othersSize
	current := pols.current
	// AWSDenyAll is only ever attached by the locker to a role without a
	// lock (any lock leaves room for the deny-all, which is no larger), so
	// only such a role is asked about it, and only from such a role does
	// the locker detach it: an AWSDenyAll that an administrator attached
	// to a locked role (a quarantine) is never touched.
	hadLock := current != nil && looksLikeLock(current)
	attached := false
	if !hadLock {
		if attached, err = r.denyAllAttached(ctx, ref); err != nil {
			return fail(err)
		}
	}
	for {
		res.Passes++
		in := st.input(spec)
		res.Instances = st.instances
		res.Addresses = prefixStrings(in.addrs)
		cands, err := plan(in, LockedVPCs(current), spec)
		if err != nil {
			return fail(err)
		}
		first := slices.IndexFunc(cands, func(c candidate) bool { return c.size <= res.Budget })
		if first < 0 {
			why := fmt.Sprintf("no inline lock fits: the other inline policies use %d of %d characters, the smallest lock needs %d",
				pols.othersSize, lockpolicy.MaxRolePolicySize, cands[len(cands)-1].size)
			return r.attachDenyAll(ctx, ref, res, attached, pols.exists || current != nil, in.total > 0, why)
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
		if errors.Is(err, errNoLockFits) {
			return r.attachDenyAll(ctx, ref, res, attached, pols.exists || current != nil, in.total > 0,
				"no inline lock fits: IAM answered LimitExceeded to every one (another inline policy grew)")
		}
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
		if attached {
			// The inline lock is in place: AWSDenyAll, which this role got
			// when no inline lock fitted, can go.
			if err := r.detachDenyAll(ctx, ref); err != nil {
				return fail(err)
			}
			attached, res.Detached = false, true
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
		next, err := r.describeRole(ctx, role, spec)
		if err != nil {
			res.Action = ActionError
			res.Err = fmt.Errorf("locker: verify lock of role %s after writing it: %w", role, err)
			res.Error = res.Err.Error()
			return res
		}
		if next.input(spec).equal(in) {
			return res
		}
		st = next
	}
}
