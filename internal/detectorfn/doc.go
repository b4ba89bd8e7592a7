// Package detectorfn is the detector Lambda's function (lambda/detector is
// its bootstrap): the cold start (Start), the handler and what it
// guarantees about delivery. It reads CloudTrail records delivered by
// EventBridge, a CloudWatch Logs subscription or a Kinesis stream (the
// shape is sniffed from the payload), decides with internal/detect and
// publishes each alert to SNS or, failing that, to the dead-letter queue;
// if even that fails the invocation fails (or, for Kinesis, the record is
// reported in the partial-batch response) so that Lambda retries it. See
// "Delivery guarantees" in handler.go.
//
// The work of one invocation has a time budget per phase: deciding
// (inventory lookups) until half of the remaining time, publishing
// (8 concurrent SNS publishes with detect's retries) until 80 %, then
// dead-lettering, keeping a second to answer the Runtime API. Within the
// decide phase the inventory paces lookups of unseen instances (5
// DescribeInstances calls a second per region and container, waiting up
// to 2 s for a call rather than failing it) and stops calling a region
// that failed 3 calls in a row for a cool-down (see "Under load and
// faults" in internal/detect for the measured figures).
//
// The detector honours the app's trust (DEFENDERS_TRUSTED_EGRESS_PREFIXES,
// DEFENDERS_SHARED_VPC_ENDPOINTS, read by detect.LoadSettings with
// lockpolicy.ParseTrust): a call from a trusted egress prefix, or through
// a shared endpoint from the instance's own private IPv4, is OK, as its
// lock admits it.
//
// # Organisation mode
//
// With DEFENDERS_ORGANIZATION_ID and DEFENDERS_MEMBER_ROLE_NAME
// (detect.Settings.Organization) the function is the central detector of
// an AWS Organization: the member accounts' instance sessions arrive from
// a central EventBridge bus, and each is judged against its own account's
// and region's inventory, read through the account's member role (see
// "Organisation mode" in internal/detect). The wiring (organization in
// wire.go): one sts:AssumeRole session per account (ec2inventory's
// MemberSessions: cached until 5 minutes before it expires, refreshed
// once, concurrent callers sharing one call, at most 10 AssumeRole calls a
// second, AccessDenied remembered 5 minutes and other failures 1 to 30 s,
// at most 2,000 accounts), one SDK EC2 client per region shared by every
// account (each call signed with the account's session:
// ec2inventory.WithCredentials), and per account a MultiRegionInventory of
// CachedInventories (at most 5,000 entries per account-region, 200 VPCs)
// held by a detect.Organization (at most 1,000 accounts and about 40,000
// entries in all: some 24 MB). Under lockdown the locked session may not
// call sts:AssumeRole: member sessions are assumed with the function's own
// credentials and the lockdown's session policy, so they are locked to the
// function's address too.
//
// What it costs and where the limits are, measured in
// TestOrganisationAtScale and TestFigureOrganisation (DEFENDERS_FIGURES=1)
// against lambdatest.Org with AWS's latencies (AssumeRole 100 ms, EC2 60
// ms) and throttling, events paced on a simulated clock and spread over
// Lambda execution environments that each keep their own caches:
//
//   - one container, 200 accounts x 4 regions x 3 instances, 4 calls per
//     instance at 40 events a second: 0.021 AssumeRole and 0.84 EC2 calls
//     per event (0.36 at 10 calls per instance), invocations of 53 ms on
//     average (p99 415 ms, the cold lookups), 3.7 MB of caches;
//   - one container, 1,000 accounts, 100 events a second: 1 AssumeRole per
//     account, 1.03 EC2 calls per event, 14.7 MB of caches (700 bytes per
//     entry);
//   - ten containers, as Lambda scales out: every container assumes the
//     role of every account it meets and fills its own caches, so STS and
//     EC2 calls grow with the containers (200 accounts: 0.21 AssumeRole and
//     3.4 EC2 calls per event, 224 ms per invocation); with 1,000 accounts
//     the cold containers' 11,900 AssumeRole calls met STS throttling (50 a
//     second in the fake) and 7 % of the events were retried (none lost).
//
// What binds at organisation scale is therefore not the detector's memory
// but the security account's quotas: the STS request rate when many cold
// containers meet many accounts (AWS does not publish the AssumeRole
// quota; the detector holds itself to 10 a second per container and
// retries what is throttled), Lambda concurrency (1,000 by default, shared
// with everything in the account: rate x mean duration, about 24 for 100
// events a second over 10 containers), and the EventBridge invocations
// quota of the bus's region (one per event: 1,100 a second in most
// regions, up to 18,750 in us-east-1, us-west-2 and eu-west-1). Past them:
// fewer, warmer containers per account (a Kinesis stream partitioned by
// account between the bus and the detector: each shard's container meets
// only its accounts, and batches amortise the lookups; the decoder would
// have to read EventBridge events from Kinesis records), one central
// detector per region (the member rules forward to their region's bus), or
// sharding the organisation across detectors (one bus and detector per
// OU).
//
// Metrics: see "Metrics of the organisation mode" in metrics.go. Only the
// alerts get an Account dimension (one metric per alerting account and
// hour); every other figure is one metric for the function, and the
// batch's account is a property of its record, for Logs Insights.
//
// Output: JSON log lines and one CloudWatch embedded metric format record
// per invocation (namespace Defenders/Detector, internal/emf), on stdout,
// in the vocabulary of internal/lambdarun; in organisation mode, one more
// per alerting account.
package detectorfn
