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
// Output: JSON log lines and one CloudWatch embedded metric format record
// per invocation (namespace Defenders/Detector, internal/emf), on stdout,
// in the vocabulary of internal/lambdarun.
package detectorfn
