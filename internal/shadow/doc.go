// Package shadow is "shadow mode", the safe rollout of a lock or a service
// control policy: before a deny-only policy is enforced, it replays live
// CloudTrail records against it and says which calls it WOULD deny, per
// account and role.
//
// It has four parts, all pure Go:
//
//   - Policy, an evaluator for the deny-only documents that
//     internal/lockpolicy renders (the lock, DenyAll, the SCP): Deny
//     statements on Action "*" and Resource "*" whose conditions use
//     StringEquals, StringNotEquals, IpAddress, NotIpAddress, Null, Bool,
//     ArnEquals, ArnNotEquals, ArnLike, ArnNotLike (each but Null also with
//     IfExists) over the condition keys a CloudTrail record can tell
//     (Keys). Compile refuses everything else with an error that names it:
//     an Allow, another action, NotAction, another operator, another key.
//     It never answers "allowed" for a document it does not understand.
//   - Request, the IAM request context of one CloudTrail record
//     (FromRecord), completed with what the inventory knows of the instance
//     (Instance) and what the caller knows of VPC endpoints and principal
//     tags (Options). What the record does not tell is UNKNOWN, not absent.
//   - Report, which aggregates verdicts per account and role, bounded in
//     memory, and renders deterministic JSON and Markdown.
//   - Across invocations: LogLine, the log line in which the detector's
//     runner (internal/shadowrun) publishes one invocation's Summary
//     (Shrink keeps it within one CloudWatch Logs event); LogReader and
//     ReadReports, which read such lines back from what the CloudWatch
//     Logs tools print; Merger and Merge, which add Summaries up within the
//     same caps (merging the summaries of disjoint sets of records gives
//     the summary of all of them); Summary.Validate for summaries read
//     from outside. `review --shadow` (cmd/review) is built on them.
//
// # Three-valued evaluation
//
// IAM evaluates each condition to true or false. When a key's value is
// unknown (the VPC of a VPC endpoint that the caller did not map, principal
// tags that were not supplied, the address of an AWS service acting for the
// caller), the condition is unknown, and so is a statement whose other
// conditions do not settle it (Kleene logic: false AND unknown is false,
// true AND unknown is unknown). A request is Denied when a statement surely
// matches, Allowed when every statement surely does not, and Undetermined
// otherwise: the verdict then names the statements and the missing facts.
// Every Denied and Allowed verdict therefore holds whatever the unknown
// values are.
//
// # IAM semantics followed
//
// From the IAM User Guide ("IAM JSON policy elements: Condition operators",
// "Condition", "Variables and tags"): conditions of a statement, and keys of
// one operator, are ANDed; values of one key are ORed; a negated operator
// (StringNotEquals, NotIpAddress, ArnNotEquals, ArnNotLike) is true when the
// request matches none of the values, and true when the key is absent; a
// positive operator is false on an absent key; ...IfExists is true on an
// absent key; Null "true" tests absence. Condition key names are
// case-insensitive, values case-sensitive. A bare IPv4 address is a /32. A
// policy variable (${aws:SourceVpc}) is replaced by the key's value; IAM
// documents only that a variable it cannot resolve "might" invalidate the
// statement, so a variable naming an absent key (without a default,
// ${key, 'default'}) makes the condition unknown rather than a guess. The
// locks guard every variable with a Null check, so this never decides a
// lock's verdict.
package shadow
