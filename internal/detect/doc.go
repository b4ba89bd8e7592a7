// Package detect decides whether EC2 instance-profile credentials seen in
// CloudTrail were used from somewhere the instance could not have been, and
// turns such uses into alerts.
//
// # Pipeline
//
// The detector Lambda decodes a delivery with package cloudtrail (which
// pre-filters out records that cannot be instance sessions), then hands the
// batch to a Processor:
//
//  1. IsInstanceSession keeps records made with instance-profile
//     credentials (userIdentity.type "AssumedRole", principalId ending in
//     ":i-<8 or 17 hex digits>", or sessionContext.ec2RoleDelivery set).
//  2. Self.Matches skips the detector's own calls; CheckAccount skips
//     (and counts) instance sessions of other accounts' credentials, which
//     an organisation trail delivers and the inventory cannot judge (see
//     "Account attribution" in account.go), unless the detector is the
//     central detector of an organisation (Config.Org: see "Organisation
//     mode" below); IsAWSServiceCall skips calls an AWS service made on the
//     instance's behalf (invokedBy set, or sourceIPAddress is a service
//     name): they have no client address to check.
//  3. The instance is looked up in an Inventory, normally a
//     MultiRegionInventory: a CachedInventory over the EC2 API of the
//     detector's region (see its documentation for why this replaces the
//     anchor project's scheduled S3 inventory) and, for instances not
//     there, the same over the account's other enabled regions, asking the
//     record's awsRegion first (see "Regions" in regions.go). An instance
//     is judged against the region it lives in, whatever region's API it
//     called.
//  4. Policy.Decide compares sourceIPAddress and vpcEndpointId with the
//     instance's public addresses, its VPC's NAT gateways and its VPC's
//     endpoints, and with the app's trust (Policy.TrustedSourcePrefixes,
//     Policy.TrustedVPCEndpoints: the trusted egress prefixes and shared
//     VPC endpoints the app's locks admit, from Settings): OK, BadSource or
//     InstanceMissing. Would-be alerts are re-checked after a forced
//     inventory refresh (their instances refreshed together, each once),
//     so that an instance whose addresses just changed does not raise a
//     false alarm.
//  5. NewAlert builds an anchor-compatible Alert; a Deduper suppresses
//     repeats of the same uniq_id ("<instance id>-<source IP>") within a
//     window.
//
// The Lambda then publishes Result.Alerts with Processor.Publish (bounded
// retries with exponential backoff) and must send what still fails to a
// dead-letter queue, and call Processor.Forget for the alerts that reached
// neither (a dead-lettered alert is as good as delivered: it is redriven
// from the queue, and its repeats stay suppressed); retry Result.Undecided
// records (inventory failures, cross-region lookups that failed) by
// failing the invocation or reporting Kinesis batch item failures; and log
// Result.Skipped records (other accounts, unattributable records,
// instances outside the searched regions), which Stats counts. No alert,
// no undecided and no skipped record is ever dropped silently.
//
// # Under load and faults
//
// The inventory is a CachedInventory per region (see its documentation
// and CacheOptions); what it does was measured against the EC2 fake with
// every call taking a realistic latency on a simulated clock
// (TestBacklogOfUnseenInstances in internal/detectorfn;
// TestAnEC2OutageCostsAnInvocationAFewCalls,
// TestAThrottlingBlipDelaysANewInstanceBySecondsNotTheRefreshInterval and
// TestTheBreakerFailsClosed here):
//
//   - Backlog. Instances are looked up many per EC2 call (one
//     DescribeInstances with an instance-id filter per MaxBulkLookup ids),
//     and the miss rate limit (5 calls a second, burst 20) is charged per
//     call and waits for its token (at most 2 s) instead of failing. A cold
//     container draining 100 EventBridge events from 100 instances it has
//     never seen (some in another region, some gone) made 112
//     DescribeInstances calls (1.12 per invocation, at most 2) and failed
//     none, where it failed 71 with EC2 answering in 20 ms (23 at 100 ms)
//     when each lookup was refused once the burst was spent; 100
//     CloudWatch Logs batches of 20 records with 4 to 6 unseen instances
//     each (430 in all) made 130 calls (1.3 per batch, 3.5 instances per
//     call) and failed none, where 72 failed at 20 ms; batches of 250
//     unseen instances cost 2 calls each. Pacing added at most 180 ms per
//     call, 12 s over a 100-delivery backlog at 20 ms.
//   - Throttling blip. A failed lookup of a new instance is retried after
//     1 s, then 2 s, doubling up to the 30 s refresh interval, instead of
//     30 s at once; after 3 failed calls in a row the circuit breaker
//     pauses the region's calls for 5 s (doubling while the probes fail,
//     at most 30 s).
//   - Outage. With 20 cached instances under attack and every failing
//     call taking 2 s (the SDK's retries), an invocation made 20 calls and
//     spent 40 s, more than its decide phase (half of a 60 s invocation);
//     it now makes 1 call (2 s): would-be alerts are refreshed together,
//     each instance at most once per invocation, and the breaker stops the
//     calls after 3 failures in a row.
//   - Failing closed. An instance whose inventory cannot be read is never
//     judged OK: without a usable cached answer its record is Undecided
//     (retried by Lambda, or a Kinesis batch item failure); with one (found
//     less than an hour ago) it is judged against the last known
//     addresses; a refresh that fails leaves a would-be alert an alert.
//   - SNS outage. Dead-lettered alerts stay remembered by the Deduper:
//     three invocations repeating three attacks while SNS was down sent 9
//     dead letters, and now send 3.
//
// # Organisation mode
//
// The central detector of an AWS Organization (Config.Org, normally an
// Organization; see "Organisation mode" in org.go for the semantics)
// groups a batch's instance sessions by the credentials' account and
// judges each group against that account's inventory: a
// MultiRegionInventory over the account's read-only member role
// (internal/ec2inventory's MemberSessions and WithCredentials), built like
// the detector's own but asking the record's region first
// (RegionOptions.HintFirst), up to Config.AccountWorkers accounts at a
// time. The detector's own account keeps its own inventory. What cannot be
// read is never OK and never dropped: a member role that cannot be assumed
// (AccessDenied: the member stack is missing) makes an AccountNotCovered
// alert, one per account and dedupe window; a transient STS failure leaves
// the records Undecided. Alerts carry the account (Alert.Account) and the
// regions (Region, the called API's; InstanceRegion, the instance's), and
// deduplicate on account and uniq_id together.
//
// Memory stays bounded whatever the number of accounts: an Organization
// keeps at most OrgOptions.MaxAccounts account inventories (1,000, least
// recently used evicted first) and trims them after every batch to about
// MaxInstances cached entries in all (40,000, at about 600 bytes each:
// some 24 MB); each member account-region cache holds at most
// DefaultOrgRegionMaxEntries; the member sessions are bounded too (2,000
// accounts). An evicted account costs its next batch fresh EC2 lookups, not
// a wrong verdict. Measured in TestOrganisationAtScale
// (internal/detectorfn): 200 accounts x 4 regions x 3 instances, 9,610
// events at 40 a second into one container: one AssumeRole per account
// (0.021 per event), 0.84 EC2 calls per event (each instance looked up
// about once per inventory TTL, each VPC's NAT gateways and endpoints once
// per TTL, each account's regions once), the planted attacks and only they
// alerting, 3.7 MB retained by the detector (600 bytes per cached entry).
//
// # Severity
//
// BadSource is HIGH when the credentials were used from a public address,
// or through a VPC endpoint of a VPC that is not the instance's and is not
// owned by the instance's account; it is MEDIUM for the murkier cases
// (another VPC of the same account, a private address without an endpoint,
// another host's private address through a trusted shared endpoint, a
// source that is not an address). InstanceMissing is MEDIUM. Policy.Decide
// documents the exact rules.
package detect
