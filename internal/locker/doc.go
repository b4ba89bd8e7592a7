// Package locker keeps the locks of EC2 instance roles true.
//
// A lock (see internal/lockpolicy) is written at deploy time and goes
// stale: a stopped and started instance gets a new public IP and locks
// itself out, a new Auto Scaling instance is not listed, an instance
// launched outside CDK has no lock. The locker Lambda recomputes the lock
// of a role from EC2 whenever an instance changes state, and on a
// schedule, and writes it as the inline role policy PolicyName
// ("defenders-lock").
//
// # Which roles
//
// A role is managed if and only if its IAM path starts with Config.RolePath
// (default ManagedPathPrefix, "/defenders/"; the locker Lambda reads it
// from the environment the construct sets). Any other role is never
// written, and never read beyond what GetInstanceProfile says of an
// event's instance.
//
// The path is what lets the locker's own permission be iam:PutRolePolicy
// on arn:aws:iam::ACCOUNT:role/defenders/* only: whatever happens to the
// locker, it can write policies on those roles and no others, and only
// principals that can create roles (i.e. already IAM admins) can widen that
// set; a role's path cannot be changed after creation. Treat the path as
// privileged: the locker can write any inline policy on roles under it.
//
// The locker's own role must not be managed (a role with no instance gets
// a deny-all lock), nor should any role used by something other than EC2
// instances.
//
// # Which instances
//
// A state-change event names an instance: DescribeInstances gives its
// instance profile, GetInstanceProfile its role, and the role's path says
// whether it is managed. If the instance is gone or shows no profile while
// shutting down, every managed role is reconciled instead, so that its
// address leaves whichever lock listed it.
//
// For each managed role: ListInstanceProfilesForRole, then one
// DescribeInstances filtered by iam-instance-profile.arn (all of the
// role's profiles) and instance-state-name pending, running, stopping,
// stopped. See InstanceFromEC2 for which addresses count. Stopped
// instances contribute their VPC only.
//
// A scheduled event (and a CloudTrail event for one of AddressAPICalls,
// which change addresses without a state change) reconciles every managed
// role: ListRoles with PathPrefix Config.RolePath finds them, including a
// role that no instance uses any more.
//
// EC2 is regional and IAM is global. The locker sees the instances of the
// region its EC2 client is in; a managed role must be used by instances of
// that region only, or the lock will lack the other regions' addresses
// (which fails closed: those instances are denied).
//
// # The lock
//
// The exact lock is lockpolicy.Render(Lock{SourceIPs: every public address
// of the live instances, VPCs: the VPCs of all instances}), byte for byte.
// It is compared with the current PolicyName policy semantically (see
// CanonicalPolicy), and written only when it differs.
//
// Fail closed:
//
//   - live instances without a public address: VPC endpoints only;
//   - no live instance, some stopped: VPC endpoints of their VPCs only;
//   - no instance at all: VPC endpoints of the VPCs the current lock lists;
//   - nothing known: lockpolicy.DenyAll.
//
// Instances in private subnets reach public AWS endpoints from their NAT
// gateway's address. The locker does not add NAT addresses (every host
// behind the NAT shares them), so such instances get the VPC-endpoints-only
// lock and need VPC endpoints for the services they call.
//
// A lock is never empty and never removed. Errors leave the current lock
// in place: the locker never writes a lock computed from partial data.
//
// # CloudFormation deletions
//
// `cdk destroy` of a stack that owns a managed role deletes the stack's
// lock (an AWS::IAM::Policy named PolicyName, i.e. the same inline policy)
// first, because it depends on the role and the instance; then it
// terminates the instance and deletes the instance profile and the role.
// The termination, or the schedule, runs the locker meanwhile, which would
// write the fail-closed lock of a role without instances: a PutRolePolicy
// that lands after the lock's deletion creates a policy CloudFormation does
// not know, its DeleteRole fails with DeleteConflict ("must delete policies
// first") and so does the destroy. The locker cannot undo the write (it
// has no iam:DeleteRolePolicy, by design).
//
// So right before every write (each pass, creating or rewriting the
// lock: CloudFormation can delete it between the locker's read and its
// write) the locker asks CloudFormation which stack owns the role
// (DescribeStackResources with the role name as PhysicalResourceId; "Stack
// for NAME does not exist" means none, and the role is locked as always),
// and that stack's status, and its root stack's when it is nested
// (DescribeStacks). A role whose stack, or root stack, is
// DELETE_IN_PROGRESS or ROLLBACK_IN_PROGRESS is not written: its Result is
// ActionSkipped, with the stack in Result.Stack and Result.Reason. In
// DELETE_FAILED and ROLLBACK_FAILED a missing lock is not created on a role
// that no instance uses (that would fail the retried deletion for good);
// a role with instances is still locked. DELETE_COMPLETE means the stack
// no longer owns the role (retained, or a reused name). See
// roleStack.skipReason for the reasoning. Nothing is asked when the lock
// does not change; a write costs one more call for a role that no stack
// owns, two for a stack's role, three for a nested stack's.
//
// Any other CloudFormation error (AccessDenied, throttling that outlasts
// the retries, an unexpected ValidationError) makes the role ActionError:
// nothing is written, the invocation fails and alarms, the schedule
// retries. Writing could break a deletion; skipping silently could leave a
// live role unlocked.
//
// Limits: the check sees the stacks of the locker's region only (a role
// deployed by a stack of another region is treated as not owned); an
// update that removes or replaces a role (UPDATE_COMPLETE_CLEANUP_IN_PROGRESS)
// is not detected; and a deletion that starts in the milliseconds between
// the check and the write can still race it.
//
// # Size fallback
//
// IAM allows lockpolicy.MaxRolePolicySize (10,240) characters, whitespace
// not counted, summed over ALL inline policies of a role. The locker reads
// every other inline policy of the role (ListRolePolicies, GetRolePolicy)
// and gives the lock what they leave (Result.Budget). Managed policies do
// not count against this quota. If the exact lock does not fit, the first
// of these that fits is written, each denying at least what the previous
// one denies:
//
//  1. addresses that share a /24 (IPv4) or /64 (IPv6) merged into it;
//  2. the same with /20 and /56;
//  3. the same with /16 and /48, the coarsest ever listed;
//  4. VPC endpoints only;
//  5. lockpolicy.DenyAll.
//
// An address alone in its network is never widened (see Aggregate). If IAM
// still answers LimitExceeded (another inline policy grew meanwhile), the
// next step is tried. Any of these is reported as ActionFallback, for as
// long as it is in place, so the Lambda can emit a metric and alarm.
//
// # Concurrency and idempotence
//
// Every invocation computes the whole desired lock from EC2 and writes it
// whole; nothing is a delta, so repeating an event is harmless and two
// invocations that see the same EC2 state write the same document. The
// race is two invocations with different views: A describes, B describes
// a newer state and writes, then A writes its older view last. To close
// it, every write is followed by a fresh describe of the role's instances;
// if they changed since the lock was computed, the lock is recomputed and
// written again (at most Config.MaxPasses passes). The last writer thus
// always verifies after the last write. IAM reads are not used for the
// check: IAM is eventually consistent and would echo our own write.
//
// # Retries and counters
//
// Every API call is retried on throttling and transient errors
// (Throttling, ThrottlingException, RequestLimitExceeded, 5xx, connection
// errors: the SDK's own classification) with exponential backoff and
// jitter, at most Config.MaxAttempts attempts. NoSuchEntity on a role or
// instance profile, and InvalidInstanceID.NotFound on the event's instance,
// are retried Config.NotFoundAttempts times, since IAM and EC2 are
// eventually consistent right after creation. When the attempts run out,
// the role's Result is ActionError and its lock is untouched.
// Report.Calls counts every attempt per operation ("API calls per event").
//
// # Permissions
//
// The locker needs (ACCOUNT is the account id):
//
//   - ec2:DescribeInstances on "*" (Describe actions have no resource
//     scoping): the instances, their addresses and profiles;
//   - iam:GetInstanceProfile on arn:aws:iam::ACCOUNT:instance-profile/*:
//     the role of an event's instance, whose profile can have any path;
//   - iam:ListRoles on "*" (it has no resource type): the path-managed
//     roles;
//   - iam:ListInstanceProfilesForRole, iam:ListRolePolicies,
//     iam:GetRolePolicy and iam:PutRolePolicy on
//     arn:aws:iam::ACCOUNT:role/defenders/*: the managed roles' profiles,
//     the size budget, the current lock and the write;
//   - cloudformation:DescribeStackResources and
//     cloudformation:DescribeStacks on
//     arn:aws:cloudformation:REGION:ACCOUNT:stack/* (read-only): the stack
//     that owns a role and whether it is being deleted (see CloudFormation
//     deletions); the owning stack cannot be known before the call.
//
// It never needs iam:GetRole, iam:DeleteRolePolicy, iam:AttachRolePolicy,
// iam:TagRole, iam:PassRole or any sts action.
package locker
