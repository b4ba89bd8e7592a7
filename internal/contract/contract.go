// Package contract holds the facts that the constructs (which run under jsii at synth time) and
// the Lambdas (which never link the CDK) must agree on: the environment variables a construct
// sets and its Lambda reads, the metric namespaces the alarms watch, the lock's inline policy
// name and the locker's role path, and the flags every shipped Lambda is built with. Each fact
// is written here once; both sides import this package (pure Go, no jsii).
package contract

// Environment variables of the detector Lambda (constructs/detector sets them).
const (
	// EnvTopicARN is the alert topic's ARN.
	EnvTopicARN = "DEFENDERS_TOPIC_ARN"
	// EnvDLQURL is the dead-letter queue's URL.
	EnvDLQURL = "DEFENDERS_DLQ_URL"
	// EnvDedupeWindow is the alert deduplication window (Go duration; "0s" disables).
	EnvDedupeWindow = "DEFENDERS_DEDUPE_WINDOW"
	// EnvInventoryTTL is how long an instance's addresses are cached (Go duration).
	EnvInventoryTTL = "DEFENDERS_INVENTORY_TTL"
	// EnvSelfRoleARN is the detector's own role ARN (its own calls are skipped; its account is
	// the one it judges).
	EnvSelfRoleARN = "DEFENDERS_SELF_ROLE_ARN"
	// EnvRegions optionally restricts the regions searched for instances of other regions.
	EnvRegions = "DEFENDERS_REGIONS"
	// EnvTrustedEgressPrefixes holds the app's trusted egress prefixes (comma-separated public
	// CIDRs: central NAT gateways reached over Transit Gateway, corporate proxies); the detector
	// and the locker read it (lockpolicy.ParseTrust).
	EnvTrustedEgressPrefixes = "DEFENDERS_TRUSTED_EGRESS_PREFIXES"
	// EnvShadowMode is shadow mode's proposed lock mode (lockpolicy.Mode): every judged record
	// is evaluated against the lock that mode would give its instance (internal/shadowrun).
	EnvShadowMode = "DEFENDERS_SHADOW_MODE"
	// EnvShadowPolicy is shadow mode's proposed deny-only policy (an SCP from lockpolicy.SCP,
	// or any lock-shaped document): JSON, or its gzip in standard base64 (shadowrun.EncodePolicy).
	EnvShadowPolicy = "DEFENDERS_SHADOW_POLICY"
	// EnvSharedVPCEndpoints holds the app's shared VPC endpoints (comma-separated vpce- ids of
	// interface endpoints in a shared-services VPC); the detector and the locker read it.
	EnvSharedVPCEndpoints = "DEFENDERS_SHARED_VPC_ENDPOINTS"
)

// Environment variables of the locker Lambda (constructs/locker sets them).
const (
	// EnvRolePath is the IAM path of the roles the locker manages.
	EnvRolePath = "DEFENDERS_ROLE_PATH"
	// EnvPolicyName is the name of the inline lock policy the locker writes.
	EnvPolicyName = "DEFENDERS_POLICY_NAME"
)

// Environment variables of lockdown (constructs/internal/golambda sets them on both Lambdas; internal/lockdown
// reads them).
const (
	// EnvLockdown, "true", makes the function lock its own credentials at cold start.
	EnvLockdown = "DEFENDERS_LOCKDOWN"
	// EnvRoleARN is the function role's full ARN, path included (the role it assumes).
	EnvRoleARN = "DEFENDERS_ROLE_ARN"
	// EnvLockdownVPCs holds comma-separated VPC ids whose endpoints the function may use.
	EnvLockdownVPCs = "DEFENDERS_LOCKDOWN_VPCS"
	// EnvCheckipURL overrides where the function looks up its own address.
	EnvCheckipURL = "DEFENDERS_CHECKIP_URL"
	// EnvLockdownDuration is the locked session's duration (Go syntax, e.g. "30m").
	EnvLockdownDuration = "DEFENDERS_LOCKDOWN_DURATION"
)

// CloudWatch metric namespaces of the Lambdas' embedded metrics (the constructs' alarms watch them).
const (
	DetectorMetricsNamespace = "Defenders/Detector"
	LockerMetricsNamespace   = "Defenders/Locker"
)

// The lock and the locker.
const (
	// LockPolicyName is the inline policy that holds a lock: the construct's deploy-time
	// AWS::IAM::Policy and the locker's PutRolePolicy use the same name, so the locker replaces
	// the deploy-time lock instead of adding a second, stale one.
	LockPolicyName = "defenders-lock"
	// LockerRolePath is the IAM path of the roles the locker manages by default.
	LockerRolePath = "/defenders/"
	// LockModeTagKey is the role tag that records a lock's mode (one of lockpolicy's Mode values):
	// the construct writes it with the lock, the locker renders the same mode, the review shows it.
	LockModeTagKey = "defenders:lock-mode"
)

// BuildFlags are the go build flags of every shipped Lambda binary: no paths, no VCS stamp, no
// build id, so that the same source gives the same binary byte for byte.
var BuildFlags = []string{"-trimpath", "-tags", "lambda.norpc", "-buildvcs=false", "-ldflags", "-s -w -buildid="}

// BuildEnv is the environment of a shipped Lambda's build on top of the caller's (GOOS and
// GOARCH are the deployment's; tests that run the binary here use the host's): static, with the
// module's own go.sum, and never a user's workspace.
var BuildEnv = []string{"CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOWORK=off"}

// LambdaPlatform is GOOS and GOARCH of the deployed Lambdas (Graviton).
var LambdaPlatform = []string{"GOOS=linux", "GOARCH=arm64"}

// Metadata keys on CloudFormation resources, written by the constructs and read by the review
// (and so by the guard).
const (
	// AcknowledgeMetadataKey holds a resource's acknowledgements: a list of
	// {"rule": "DEF-...", "reason": "..."}.
	AcknowledgeMetadataKey = "defenders:acknowledge"
	// ExemptMetadataKey is the older form of an acknowledgement of DEF-LOCK-1 on a role: the
	// reason as a string. lock.Exempt still writes it next to the acknowledgement.
	ExemptMetadataKey = "defenders:exempt"
	// TrustMetadataKey, on a lock's AWS::IAM::Policy, lists the app's trust rendered into it
	// ({"egressPrefixes": [...], "sharedVpcEndpoints": [...]}), so that the review can tell
	// trusted egress prefixes from the instance's own addresses.
	TrustMetadataKey = "defenders:trust"
)

// The app's context keys: every setting a user can change has one name, prefixed
// ContextNamespace (the README lists them; stacks.KnownKeys is the set the app accepts).
const (
	ContextNamespace = "defenders:"

	KeySSHCIDR                     = "defenders:sshCidr"
	KeyCheckipURL                  = "defenders:checkipUrl"
	KeyPrefix                      = "defenders:prefix"
	KeyMaxAzs                      = "defenders:maxAzs"
	KeyNATGateways                 = "defenders:natGateways"
	KeyInstanceType                = "defenders:instanceType"
	KeyManagedPolicies             = "defenders:managedPolicies"
	KeyDetector                    = "defenders:detector"
	KeyAlertEmail                  = "defenders:alertEmail"
	KeyTrailLogGroup               = "defenders:trailLogGroup"
	KeyDetectorRegions             = "defenders:detectorRegions"
	KeyDetectorReservedConcurrency = "defenders:detectorReservedConcurrency"
	KeyLocker                      = "defenders:locker"
	KeyLockerReservedConcurrency   = "defenders:lockerReservedConcurrency"
	KeyLockdown                    = "defenders:lockdown"
	KeyTrustedEgressPrefixes       = "defenders:trustedEgressPrefixes"
	KeySharedVPCEndpoints          = "defenders:sharedVpcEndpoints"
	KeyShadowMode                  = "defenders:shadowMode"
	KeyShadowSCP                   = "defenders:shadowScp"

	// Organisation mode (stacks/organization.go, constructs/organization): unset
	// KeyOrganizationID keeps the single-account app; every other key below is then an error.
	KeyOrganizationID      = "defenders:organizationId"
	KeyOrganizationTargets = "defenders:organizationTargets"
	KeyOrganizationRegions = "defenders:organizationRegions"
	KeyOrganizationCallAs  = "defenders:organizationCallAs"
	KeySCP                 = "defenders:scp"
	KeySCPTargets          = "defenders:scpTargets"
	KeySCPRestrictInternet = "defenders:scpRestrictInternet"
	KeySCPExemptAccounts   = "defenders:scpExemptAccounts"
	KeySCPExemptRoleTag    = "defenders:scpExemptRoleTag"
)

// RuleUnlockedRole is the review's rule "EC2 role without a lock" (internal/review's catalogue):
// lock.Exempt acknowledges it on the exempted role.
const RuleUnlockedRole = "DEF-LOCK-1"

// Environment variables of the detector in organisation mode (constructs/detector sets them from
// Props.Organization; both or neither).
const (
	// EnvOrganizationID is the AWS Organizations id (o-...) of the organisation whose member
	// accounts' instance sessions the central detector judges.
	EnvOrganizationID = "DEFENDERS_ORGANIZATION_ID"
	// EnvMemberRoleName is the name of the read-only role (at path "/") that the detector assumes in
	// every member account to read that account's EC2 inventory.
	EnvMemberRoleName = "DEFENDERS_MEMBER_ROLE_NAME"
)
