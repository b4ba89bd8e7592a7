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
//     "Account attribution" in account.go); IsAWSServiceCall skips calls an
//     AWS service made on the instance's behalf (invokedBy set, or
//     sourceIPAddress is a service name): they have no client address to
//     check.
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
//     endpoints: OK, BadSource or InstanceMissing. A would-be alert is
//     re-checked once after a forced inventory refresh, so that an
//     instance whose addresses just changed does not raise a false alarm.
//  5. NewAlert builds an anchor-compatible Alert; a Deduper suppresses
//     repeats of the same uniq_id ("<instance id>-<source IP>") within a
//     window.
//
// The Lambda then publishes Result.Alerts with Processor.Publish (bounded
// retries with exponential backoff) and must send what still fails to a
// dead-letter queue, retry Result.Undecided records (inventory failures,
// cross-region lookups that failed) by failing the invocation or reporting
// Kinesis batch item failures, and log Result.Skipped records (other
// accounts, unattributable records, instances outside the searched
// regions), which Stats counts. No alert, no undecided and no skipped
// record is ever dropped silently.
//
// # Severity
//
// BadSource is HIGH when the credentials were used from a public address,
// or through a VPC endpoint of a VPC that is not the instance's and is not
// owned by the instance's account; it is MEDIUM for the murkier cases
// (another VPC of the same account, a private address without an endpoint,
// a source that is not an address). InstanceMissing is MEDIUM. Policy.Decide
// documents the exact rules.
package detect
