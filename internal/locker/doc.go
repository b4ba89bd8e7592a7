// Package locker keeps the locks of EC2 instance roles true.
//
// A lock (see internal/lockpolicy) is written at deploy time and goes
// stale: a stopped and started instance gets a new public IP and locks
// itself out, a new Auto Scaling instance is not listed, an instance
// launched outside CDK has no lock. The locker Lambda recomputes the lock
// of a role from EC2 whenever an instance changes state or its addresses
// or instance profile change (CloudTrail events), and on a schedule, in
// the mode the role's lock mode tag names, and writes it as the inline
// role policy PolicyName ("defenders-lock").
//
// # Which roles
//
// A role is managed if and only if its IAM path starts with Config.RolePath
// (default ManagedPathPrefix, "/defenders/"; the locker Lambda reads it
// from the environment the construct sets). Any other role is never
// written, and never read beyond what GetInstanceProfile says of an
// event's instance (its tags and policies are not read either).
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
// whether it is managed. Only that role is reconciled.
//
// A termination is two events, shutting-down and terminated (the
// construct routes both). At shutting-down EC2 still shows the instance's
// instance profile, so its role is reconciled, as above, and the instance
// is left out of the lock: shutting-down and terminated instances are
// never live, and the event's own instance is left out even if an
// eventually consistent DescribeInstances still calls it running. At
// terminated EC2 usually shows neither the profile nor an address any
// more; then:
//
//   - if it still shows a profile, its roles are reconciled as above;
//   - if it shows no profile but still a public address, the managed roles
//     whose current lock lists that address are reconciled (ListRoles,
//     then one GetRolePolicy per role);
//   - if it shows neither, nothing is done (one call): its address left its
//     role's lock at shutting-down.
//
// This cannot leave an address in a lock for longer than the schedule:
// the only address a termination can leave behind is one whose
// shutting-down event was lost, failed for good (it is retried, then
// dead-lettered with an alarm) or came when EC2 no longer showed the
// profile or the address, and every scheduled run recomputes every managed
// role's lock from EC2 alone, events or not, so the address is gone at the
// next run at the latest (constructs/locker Props.Schedule, default 15
// minutes). An instance EC2 does
// not know at all (an event that arrived after EC2 forgot it, or a made-up
// id) still makes every managed role reconciled.
//
// A CloudTrail event of one of AddressAPICalls (an Elastic IP associated
// or disassociated, IPv6 addresses assigned or unassigned, a network
// interface attached, detached or modified, an instance profile
// associated, replaced or disassociated) is traced to its instance: the
// instanceId it names (requestParameters or responseElements, whatever the
// nesting); else the instance of the network interface it names
// (DescribeInstances, filter network-interface.network-interface-id);
// else the holder of the Elastic IP it names by allocation id,
// association id or address (DescribeAddresses); else the instance of the
// attachment it names. That instance's roles are reconciled, as for a
// state change; so is the role of an instance profile the event names (the
// one DisassociateIamInstanceProfile removed). ReplaceIamInstanceProfileAssociation
// does not name the profile it replaced: the managed roles whose lock lists
// the instance's public addresses are reconciled too, so that the old role
// lets go of them. An event that cannot be attributed to an instance
// reconciles every managed role, and says so in Report.Notes: in
// practice DisassociateAddress, whose association id is gone by the time
// the locker asks, and DetachNetworkInterface, likewise. A failed call
// (errorCode) changed nothing and costs nothing.
//
// A scheduled event reconciles every managed role: ListRoles with
// PathPrefix Config.RolePath finds them, including a role that no instance
// uses any more.
//
// For each managed role: ListRoleTags (its lock mode), then
// ListInstanceProfilesForRole, then one DescribeInstances filtered by
// iam-instance-profile.arn (all of the role's profiles) and
// instance-state-name pending, running, stopping, stopped. See
// InstanceFromEC2 for which addresses count. Stopped instances contribute
// their VPC only.
//
// Measured with Report.Calls (TestAPICallsPerEventKind) for 51 managed
// roles in one CloudFormation stack, one instance each, locks in place: a
// state change that moves an address 12 calls (7 when nothing changes); a
// termination 12 (shutting-down) + 1 (terminated); an address-change event
// that names the instance 12 (13 when only the Elastic IP's allocation or
// association is named); one that cannot be attributed 257; a scheduled
// run 256 (1 + 5 per role).
//
// EC2 is regional and IAM is global. The locker sees the instances of the
// region its EC2 client is in; a managed role must be used by instances of
// that region only, or the lock will lack the other regions' addresses
// (which fails closed: those instances are denied).
//
// # The lock
//
// The lock of a role is lockpolicy.Render(Lock{SourceIPs, VPCs: the VPCs
// of all its instances, Trust: Config.Trust}), byte for byte, where
// SourceIPs depend on the role's contract.LockModeTagKey tag
// ("defenders:lock-mode", written by the lock constructs with the
// deploy-time lock; see lockpolicy.Mode), so that the locker writes the
// mode the construct deployed:
//
//   - instance-public-ip and elastic-ip: every public address of the live
//     instances;
//   - nat-egress: the public addresses of the NAT gateway on each live
//     instance's route to the internet (the 0.0.0.0/0 route of its
//     subnet's route table, or of its VPC's main route table when the
//     subnet has no explicit association: DescribeRouteTables, then
//     DescribeNatGateways for the gateway's NatGatewayAddresses; blackhole
//     routes, and gateways neither pending nor available, count for
//     nothing), plus the instances' own public addresses (their IPv6
//     addresses leave through an egress-only internet gateway). Route
//     tables and NAT gateways are asked about once per invocation;
//   - vpc-endpoints-only: none, even when an instance has a public address;
//   - no tag (a role locked before modes, or by other means): every public
//     address of the live instances, the reading before modes: no NAT
//     gateway address, so such a role behind a NAT gets VPC endpoints
//     only;
//   - any other value (a typo, a mode from a newer construct): the lock is
//     never removed and never widened: the VPC-endpoints-only lock of the
//     instances' VPCs (the narrowest that still admits the instances'
//     endpoint calls; lockpolicy.DenyAll when no VPC is known) is written
//     and reported as ActionFallback, with a Reason that names the tag's
//     value, so that the Lambda's FallbackLocks alarm fires.
//
// Result.LockMode is the tag as read. Config.Trust (the app's trusted
// egress prefixes and shared VPC endpoints, which the locker Lambda reads
// from DEFENDERS_TRUSTED_EGRESS_PREFIXES and DEFENDERS_SHARED_VPC_ENDPOINTS;
// a value that does not parse fails its start) goes into every lock the
// locker writes, exact, aggregated and VPC-endpoints-only alike, as the
// construct puts it into the deploy-time lock; lockpolicy.DenyAll, which
// admits nothing, is the one exception.
//
// The lock is compared with the current PolicyName policy semantically
// (see CanonicalPolicy), and written only when it differs.
//
// Fail closed:
//
//   - live instances without an address the mode admits: VPC endpoints
//     only;
//   - no live instance, some stopped: VPC endpoints of their VPCs only;
//   - no instance at all: VPC endpoints of the VPCs the current lock lists;
//   - nothing known: lockpolicy.DenyAll;
//   - no room for even that: the AWS managed policy AWSDenyAll (see Size
//     fallback).
//
// NAT gateway addresses are shared by every host behind the gateway: a
// nat-egress lock admits calls from all of them, which is why the locker
// adds them only to roles whose construct chose that mode. A route to the
// internet through a Transit Gateway (central egress) has no NAT gateway in
// the instance's VPC: list the central egress addresses in the app's Trust.
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
// lock, or attaching AWSDenyAll: CloudFormation can delete the lock between
// the locker's read and its write) the locker asks CloudFormation which stack owns the role
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
//  5. lockpolicy.DenyAll;
//  6. the AWS managed policy AWSDenyAll, attached to the role
//     (AttachRolePolicy, arn:PARTITION:iam::aws:policy/AWSDenyAll, the
//     partition taken from the role's ARN: aws, aws-cn, aws-us-gov, ...),
//     when the other inline policies leave no room for even DenyAll.
//     AWSDenyAll denies everything, calls AWS services make on the role's
//     behalf included: the role is locked, never left unlocked, and its
//     instances are denied until the other policies shrink. Before
//     attaching, the locker asks CloudFormation as before a write (a
//     policy attached during a stack deletion fails DeleteRole just the
//     same). If the attach fails (for one, the role's quota of managed
//     policies is full), the role is ActionError: it has no lock, and the
//     Errors alarm says so.
//
// An address alone in its network is never widened (see Aggregate). If IAM
// still answers LimitExceeded (another inline policy grew meanwhile), the
// next step is tried, down to AWSDenyAll. Any of these is reported as
// ActionFallback, for as long as it is in place, so the Lambda can emit a
// metric and alarm.
//
// A role that had room for a lock always has room for DenyAll (a lock is
// never smaller, and IAM enforces the quota on every write), so the locker
// only ever attaches AWSDenyAll to a role without a lock. Such a role (and
// only such a role: it costs one ListAttachedRolePolicies) is asked
// whether AWSDenyAll is attached; when an inline lock fits again it is
// written first and AWSDenyAll detached after (Result.Detached), so the
// role is never without one or the other. AWSDenyAll on a role that has a
// lock was put there by someone else (a quarantine) and is never
// detached. If the detach fails, the role is ActionError, and the next
// runs (which see a lock) leave AWSDenyAll in place: too locked, never
// unlocked; detach it by hand.
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
// The locker needs (ACCOUNT is the account id, PARTITION the partition):
//
//   - ec2:DescribeInstances on "*" (Describe actions have no resource
//     scoping): the instances, their addresses and profiles, and the
//     instance of a network interface an event names;
//   - ec2:DescribeRouteTables and ec2:DescribeNatGateways on "*": the NAT
//     gateway addresses of nat-egress locks;
//   - ec2:DescribeAddresses on "*": the holder of an Elastic IP an event
//     names only by allocation or association id;
//   - iam:GetInstanceProfile on arn:aws:iam::ACCOUNT:instance-profile/*:
//     the role of an event's instance, whose profile can have any path;
//   - iam:ListRoles on "*" (it has no resource type): the path-managed
//     roles;
//   - iam:ListInstanceProfilesForRole, iam:ListRolePolicies,
//     iam:GetRolePolicy and iam:PutRolePolicy on
//     arn:aws:iam::ACCOUNT:role/defenders/*: the managed roles' profiles,
//     the size budget, the current lock and the write;
//   - iam:ListRoleTags on arn:aws:iam::ACCOUNT:role/defenders/*: the lock
//     mode tag (ListRoles does not return tags);
//   - iam:ListAttachedRolePolicies on arn:aws:iam::ACCOUNT:role/defenders/*:
//     whether AWSDenyAll is attached to a role without a lock;
//   - iam:AttachRolePolicy and iam:DetachRolePolicy on
//     arn:aws:iam::ACCOUNT:role/defenders/*, with the condition ArnEquals
//     iam:PolicyARN arn:PARTITION:iam::aws:policy/AWSDenyAll: the last
//     resort and its undo, for that one policy, which can only deny;
//   - cloudformation:DescribeStackResources and
//     cloudformation:DescribeStacks on
//     arn:aws:cloudformation:REGION:ACCOUNT:stack/* (read-only): the stack
//     that owns a role and whether it is being deleted (see CloudFormation
//     deletions); the owning stack cannot be known before the call.
//
// It never needs iam:GetRole, iam:DeleteRolePolicy, iam:TagRole,
// iam:PassRole or any sts action, nor iam:AttachRolePolicy for any other
// policy than AWSDenyAll.
package locker
