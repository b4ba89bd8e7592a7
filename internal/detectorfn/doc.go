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
// dead-lettering, keeping a second to answer the Runtime API.
//
// Output: JSON log lines and one CloudWatch embedded metric format record
// per invocation (namespace Defenders/Detector, internal/emf), on stdout,
// in the vocabulary of internal/lambdarun.
package detectorfn
