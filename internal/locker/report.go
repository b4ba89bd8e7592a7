package locker

import (
	"errors"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

// Action is what the locker did to a role.
type Action string

// Actions of a Result.
const (
	// ActionUnchanged means the current lock already was the desired one.
	ActionUnchanged Action = "unchanged"
	// ActionWritten means the lock was written.
	ActionWritten Action = "written"
	// ActionFallback means the role is not locked the way its mode asks,
	// but more narrowly (written now or already there): the desired lock
	// did not fit the size quota and a coarser one is in place (down to the
	// AWS managed policy AWSDenyAll, ModeManagedDenyAll), or the role's
	// lock mode tag is not a mode and the VPC-endpoints-only lock is in
	// place. Result.Reason says which. The Lambda emits a metric and alarms
	// on it.
	ActionFallback Action = "fallback"
	// ActionError means the role could not be reconciled; its lock was
	// left as it was (never widened).
	ActionError Action = "error"
	// ActionSkipped means the lock had to change but was not written,
	// because the CloudFormation stack that owns the role is deleting it
	// (or failed to, and the role has neither a lock nor an instance): see
	// Result.Stack, Result.Reason and "CloudFormation deletions" in the
	// package doc. The lock was left as it was, or stays absent.
	ActionSkipped Action = "skipped"
)

// Result is the outcome for one managed role.
type Result struct {
	// Role is the role name.
	Role string `json:"role"`
	// Action is what happened.
	Action Action `json:"action"`
	// Mode is the shape of the lock now in place (or desired, on error;
	// empty when skipped before anything was written).
	Mode Mode `json:"mode,omitempty"`
	// LockMode is the role's lock mode tag (contract.LockModeTagKey) as
	// read, "" when the role has none. A value that is not a
	// lockpolicy.Mode is kept as it is; the lock is then a fallback.
	LockMode lockpolicy.Mode `json:"lockMode,omitempty"`
	// Written reports whether PutRolePolicy succeeded during this call.
	Written bool `json:"written"`
	// Attached reports whether AWSDenyAll was attached during this call
	// (ModeManagedDenyAll).
	Attached bool `json:"attached,omitempty"`
	// Detached reports whether AWSDenyAll was detached during this call,
	// because an inline lock fits again.
	Detached bool `json:"detached,omitempty"`
	// Reason explains the mode when it is not ModeExact, or why the role
	// was skipped.
	Reason string `json:"reason,omitempty"`
	// Stack is the CloudFormation stack that owns the role, when the
	// locker had to ask (before a write) and one does.
	Stack string `json:"stack,omitempty"`
	// StackStatus is Stack's status then, e.g. "DELETE_IN_PROGRESS".
	StackStatus string `json:"stackStatus,omitempty"`
	// Instances are the role's instances that shaped the lock.
	Instances []Instance `json:"instances,omitempty"`
	// Addresses are the public addresses the role's mode admits for its
	// live instances: their own, plus their NAT gateways' in
	// lockpolicy.ModeNATEgress, none in lockpolicy.ModeVPCEndpointsOnly.
	Addresses []string `json:"addresses"`
	// SourceIPs are the addresses or prefixes the lock allows for the
	// role's instances (after any aggregation; empty in VPC-endpoints-only
	// and deny-all modes). The app's Trust.EgressPrefixes, which every lock
	// but the deny-all ones admits too, are not repeated here.
	SourceIPs []string `json:"sourceIps"`
	// VPCs are the VPCs whose endpoints the lock allows.
	VPCs []string `json:"vpcs"`
	// Size is the lock's size in IAM characters.
	Size int `json:"size"`
	// Budget is what the role's other inline policies leave of
	// lockpolicy.MaxRolePolicySize.
	Budget int `json:"budget"`
	// Passes is the number of write-then-verify passes.
	Passes int `json:"passes"`
	// Notes are warnings that need no alarm by themselves.
	Notes []string `json:"notes,omitempty"`
	// Error describes the failure when Action is ActionError.
	Error string `json:"error,omitempty"`
	// Err is the failure when Action is ActionError.
	Err error `json:"-"`
}

// Skip records a role the locker looked at and left alone.
type Skip struct {
	// Role is the role name.
	Role string `json:"role"`
	// Reason says why.
	Reason string `json:"reason"`
}

// Report is the outcome of one invocation.
type Report struct {
	// Event is the event handled (zero for a direct Reconcile call).
	Event Event `json:"event"`
	// Results has one entry per managed role, in processing order.
	Results []Result `json:"results"`
	// Skipped lists roles that are not managed. (A managed role left alone
	// because CloudFormation is deleting it is a Result, ActionSkipped.)
	Skipped []Skip `json:"skipped,omitempty"`
	// Notes say what the locker decided beyond the results.
	Notes []string `json:"notes,omitempty"`
	// Calls counts API calls by operation ("ec2:DescribeInstances",
	// "iam:PutRolePolicy", ...), every attempt included.
	Calls map[string]int `json:"calls"`
	// TotalCalls is the sum of Calls.
	TotalCalls int `json:"totalCalls"`
	// Retries is how many of TotalCalls were retries.
	Retries int `json:"retries"`
}

// count records one attempt of op.
func (r *Report) count(op string, retry bool) {
	if r.Calls == nil {
		r.Calls = map[string]int{}
	}
	r.Calls[op]++
	r.TotalCalls++
	if retry {
		r.Retries++
	}
}

// Count returns how many results have action a.
func (r Report) Count(a Action) int {
	n := 0
	for _, res := range r.Results {
		if res.Action == a {
			n++
		}
	}
	return n
}

// Err joins the errors of all failed results.
func (r Report) Err() error {
	var errs []error
	for _, res := range r.Results {
		if res.Err != nil {
			errs = append(errs, res.Err)
		}
	}
	return errors.Join(errs...)
}
