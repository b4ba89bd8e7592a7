package locker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/smithy-go"
)

// CloudFormation's answer when no stack owns a physical resource id ("Stack
// for NAME does not exist") or when a stack id is unknown ("Stack with id
// ID does not exist"): error code ValidationError, a message that ends so.
const (
	codeValidationError = "ValidationError"
	msgDoesNotExist     = "does not exist"
)

// stackNotFound reports whether err is CloudFormation saying that no stack
// exists for what was asked. Any other ValidationError is not: it is an
// error, so that a changed answer fails loudly instead of turning every role
// into "not managed by CloudFormation".
func stackNotFound(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == codeValidationError &&
		strings.Contains(ae.ErrorMessage(), msgDoesNotExist)
}

// roleStack is what CloudFormation says about the stack that owns a role.
// The zero value means no stack of this region owns it.
type roleStack struct {
	name   string
	status cfntypes.StackStatus
	// rootName and rootStatus describe the root stack when the owning stack
	// is nested (empty otherwise): a root being deleted deletes its nested
	// stacks one after another, and the lock can sit in another nested
	// stack than the role.
	rootName   string
	rootStatus cfntypes.StackStatus
}

// owned reports whether a stack owns the role.
func (s roleStack) owned() bool { return s.name != "" }

// describe renders the stack and its status for reasons and logs.
func (s roleStack) describe() string {
	d := fmt.Sprintf("CloudFormation stack %s (%s)", s.name, s.status)
	if s.rootName != "" {
		d += fmt.Sprintf(", nested in %s (%s)", s.rootName, s.rootStatus)
	}
	return d
}

// has reports whether the stack or its root is in one of statuses.
func (s roleStack) has(statuses ...cfntypes.StackStatus) bool {
	for _, st := range statuses {
		if s.status == st || (s.rootName != "" && s.rootStatus == st) {
			return true
		}
	}
	return false
}

// skipReason decides whether a lock may be written on a role owned by s,
// and returns why not ("" to write). lockExists says whether the role has
// the lock policy now; hasInstances whether any pending, running, stopping
// or stopped instance uses the role.
//
// CloudFormation deletes a stack's resources in dependency order: the lock
// (an AWS::IAM::Policy on the role, which also depends on the instance)
// first, then the instance, the instance profile and the role. A
// PutRolePolicy that lands between the lock's deletion and DeleteRole
// creates an inline policy CloudFormation does not know, and DeleteRole
// fails with DeleteConflict ("must delete policies first"). The locker has
// no iam:DeleteRolePolicy to undo it, so it must not write at all:
//
//   - DELETE_IN_PROGRESS, and ROLLBACK_IN_PROGRESS (a failed creation
//     rolls back by deleting every resource), of the stack or of its root:
//     never write, whether the write would create the lock or rewrite it
//     (CloudFormation may delete it between our read and our write).
//   - DELETE_FAILED and ROLLBACK_FAILED: the deletion stopped and will be
//     retried by a person. Writing a lock that is not there would make the
//     retry fail again at DeleteRole, so a missing lock is not created on a
//     role that no instance uses any more (the only credentials left are
//     those already issued, which expire, and the retried deletion revokes).
//     A role that still has instances (termination protection, say, made
//     the deletion fail) is locked as usual: live credentials come before a
//     clean retry. An existing lock is rewritten as usual: that does not
//     change whether DeleteRole can succeed.
//   - DELETE_COMPLETE, ROLLBACK_COMPLETE: the stack no longer owns the role
//     (it was retained, or its name was reused): lock it as usual.
//   - anything else (CREATE_COMPLETE, UPDATE_COMPLETE, ...): lock as usual.
//
// Updates that remove or replace a managed role are not detected (its
// deletion happens in UPDATE_COMPLETE_CLEANUP_IN_PROGRESS, when the rest of
// the stack lives on); a failed cleanup does not fail the update, it leaves
// the old role behind.
func (s roleStack) skipReason(lockExists, hasInstances bool) string {
	switch {
	case !s.owned():
		return ""
	case s.has(cfntypes.StackStatusDeleteInProgress, cfntypes.StackStatusRollbackInProgress):
		return fmt.Sprintf("%s is deleting the role: a lock written now would make its DeleteRole fail (DeleteConflict), so nothing is written", s.describe())
	case s.has(cfntypes.StackStatusDeleteFailed, cfntypes.StackStatusRollbackFailed) && !lockExists && !hasInstances:
		return fmt.Sprintf("%s failed to delete and no instance uses the role: a lock created now would make the retried deletion fail at DeleteRole, so none is created", s.describe())
	}
	return ""
}

// stackOf asks CloudFormation (this region's) which stack owns a role and
// in what state it and its root stack are: DescribeStackResources with the
// role name as PhysicalResourceId, then DescribeStacks by stack id (and by
// root id for a nested stack). A role that no stack owns is the zero
// roleStack. Any other failure is an error: the caller must not write (see
// checkStack).
func (r *run) stackOf(ctx context.Context, role string) (roleStack, error) {
	cfn := r.l.cfg.CloudFormation
	var out *cloudformation.DescribeStackResourcesOutput
	err := r.call(ctx, "cloudformation:DescribeStackResources", false, func(ctx context.Context) (err error) {
		out, err = cfn.DescribeStackResources(ctx, &cloudformation.DescribeStackResourcesInput{PhysicalResourceId: aws.String(role)})
		return err
	})
	if stackNotFound(err) {
		return roleStack{}, nil
	}
	if err != nil {
		return roleStack{}, fmt.Errorf("locker: find the CloudFormation stack of role %s: %w", role, err)
	}
	// Every resource of the answer belongs to the one stack that owns the
	// physical id; prefer the role's own entry.
	var id string
	for _, res := range out.StackResources {
		if sid := deref(res.StackId); sid != "" && (id == "" || (deref(res.PhysicalResourceId) == role && deref(res.ResourceType) == "AWS::IAM::Role")) {
			id = sid
		}
	}
	if id == "" {
		return roleStack{}, fmt.Errorf("locker: find the CloudFormation stack of role %s: an answer without a stack id", role)
	}
	st, ok, err := r.describeStack(ctx, id)
	if err != nil || !ok {
		// Not found: the stack went away between the two calls (stack ids
		// are answered for 90 days after deletion), so it owns nothing.
		return roleStack{}, err
	}
	rs := roleStack{name: deref(st.StackName), status: st.StackStatus}
	if root := deref(st.RootId); root != "" && root != deref(st.StackId) {
		rt, ok, err := r.describeStack(ctx, root)
		if err != nil {
			return roleStack{}, err
		}
		if ok {
			rs.rootName, rs.rootStatus = deref(rt.StackName), rt.StackStatus
		}
	}
	return rs, nil
}

// describeStack returns one stack by id, and false if CloudFormation says
// it does not exist.
func (r *run) describeStack(ctx context.Context, id string) (cfntypes.Stack, bool, error) {
	var out *cloudformation.DescribeStacksOutput
	err := r.call(ctx, "cloudformation:DescribeStacks", false, func(ctx context.Context) (err error) {
		out, err = r.l.cfg.CloudFormation.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(id)})
		return err
	})
	if stackNotFound(err) {
		return cfntypes.Stack{}, false, nil
	}
	if err != nil {
		return cfntypes.Stack{}, false, fmt.Errorf("locker: describe CloudFormation stack %s: %w", id, err)
	}
	for _, st := range out.Stacks {
		if deref(st.StackId) == id || deref(st.StackName) == id {
			if st.StackStatus == "" {
				return st, false, fmt.Errorf("locker: describe CloudFormation stack %s: an answer without a status", id)
			}
			return st, true, nil
		}
	}
	return cfntypes.Stack{}, false, fmt.Errorf("locker: describe CloudFormation stack %s: the answer does not list it", id)
}

// checkStack runs right before every write of a role's lock (each pass):
// it reports the owning stack in res and returns true when the write must
// be skipped (res is then ActionSkipped, with the reason). An error from
// CloudFormation other than "no stack owns this role" is returned as is:
// the role ends in ActionError, nothing is written, and the invocation
// fails, so that the Errors alarm fires and the schedule retries. Neither
// silent choice is safe: writing could break a deletion for good (the
// locker cannot delete what it wrote), and skipping silently could leave a
// live role unlocked with nobody told.
//
// Between this check and the write is a window of milliseconds (seconds
// when IAM throttles) in which a deletion that starts now could delete the
// lock first; IAM has no conditional write to close it.
func (r *run) checkStack(ctx context.Context, role string, res *Result, lockExists, hasInstances bool) (bool, error) {
	st, err := r.stackOf(ctx, role)
	if err != nil {
		return false, err
	}
	res.Stack, res.StackStatus = st.name, string(st.status)
	reason := st.skipReason(lockExists, hasInstances)
	if reason == "" {
		return false, nil
	}
	res.Action, res.Reason = ActionSkipped, reason
	return true, nil
}
