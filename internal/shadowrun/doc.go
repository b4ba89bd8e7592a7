// Package shadowrun is the detector's side of shadow mode, the safe
// rollout of a lock or an SCP: before the policy is enforced, the detector
// evaluates it, report-only, over the live CloudTrail records of instance
// sessions it judges anyway, and logs per account and role the calls it
// WOULD deny (counts and examples, package shadow). `review --shadow`
// (cmd/review) merges those logs into one report and exits 1 when any call
// would be denied, so that CI can gate the enforcement on it.
//
// # Configuration
//
// ConfigFromEnv reads one of two proposals (neither: shadow mode is off):
//
//   - EnvShadowMode, a lock mode (lockpolicy.Mode). For every record the
//     runner renders the lock that mode would give the record's instance
//     (lockpolicy.Render with the instance's addresses as the lock
//     construct reads them for the mode, its VPC and the app's trust from
//     contract.EnvTrustedEgressPrefixes and contract.EnvSharedVPCEndpoints),
//     compiles it (cached per instance while the inventory says the same
//     of it, at most Config.MaxPolicies) and evaluates the record.
//   - EnvShadowPolicy, a static deny-only document in the lock vocabulary
//     (an SCP from lockpolicy.SCP, a lock, DenyAll), as JSON or gzip+base64
//     (EncodePolicy).
//
// A bad value fails the start (FromEnv's error names the variable).
//
// # What the request context knows
//
// The record gives the source address and endpoint; the inventory's
// detect.Instance gives the instance's VPC (aws:Ec2InstanceSourceVpc), its
// primary private IPv4 (aws:Ec2InstanceSourcePrivateIPv4) and its VPC's
// endpoints, which map to its VPC (aws:SourceVpc). A shared endpoint
// (Trust.SharedVPCEndpoints) lives in a VPC whose id the detector does not
// know: aws:SourceVpc is then present but unknown. The locks and the SCP
// never need it there (they admit a shared endpoint by aws:SourceVpce),
// but a policy that compares aws:SourceVpc of such a call finds it
// undetermined; so is every call through an endpoint that is neither the
// instance's nor shared. An instance the inventory does not know makes a
// proposed lock undetermined (no lock can be rendered for it); a static
// policy is still evaluated, with the instance's facts unknown. Principal
// tags are never known, so a policy that exempts by tag (the SCP's
// ExemptRoleTag) leaves the calls it would otherwise deny undetermined.
//
// # Output
//
// Flush, once per invocation, writes one shadow.LogLine ({"msg":"shadow
// report",...}) shrunk to fit one CloudWatch Logs event, and one EMF
// record (namespace contract.DetectorMetricsNamespace, metrics WouldDeny
// and ShadowUndetermined, no dimension: two time series per function,
// whatever the number of roles). Memory is bounded by the report's caps
// (shadow.ReportOptions) and the policy cache.
//
// A nil *Runner is shadow mode off: Observe and Flush do nothing, so the
// handler wires it unconditionally.
package shadowrun
