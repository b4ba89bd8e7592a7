// Package cloudtrail decodes AWS CloudTrail records from the three shapes in
// which the Defenders detector receives them:
//
//   - an EventBridge "AWS API Call via CloudTrail" event, whose "detail" is
//     the CloudTrail record (Decoder.DecodeEventBridge);
//   - a CloudWatch Logs subscription payload, base64 of gzip of a JSON
//     document whose logEvents[].message fields are CloudTrail records
//     encoded as JSON strings, as delivered to Lambda in
//     {"awslogs":{"data":"..."}} (Decoder.DecodeCWLEvent and the lower-level
//     DecodeCWLData, DecodeCWLCompressed and DecodeCWLPayload);
//   - a Lambda Kinesis event whose Records[].kinesis.data each carry one such
//     gzip'd CloudWatch Logs payload (Decoder.DecodeKinesisEvent, or
//     Decoder.DecodeKinesisData for records already decoded by aws-lambda-go).
//
// # Hot path
//
// The detector only cares about calls made with EC2 instance-profile
// credentials, typically a small fraction of an account's CloudTrail volume.
// The decoders therefore never run encoding/json over every record. A small
// hand-written scanner walks the envelopes, and each record is first checked
// by MayBeInstanceSession, a few substring searches on the raw (possibly
// still JSON-string-escaped) bytes. Only records that pass are decoded, and
// only the fields detection needs are extracted into Record. A CloudWatch Logs
// message is parsed while it is still escaped, in the pass that finds the end
// of its string (escScanner); its strings alias the decompressed payload, and
// the record JSON is unescaped only when Record.JSON is called (for an alert).
//
// The pre-filter is conservative: it never rejects a record whose decoded
// userIdentity.principalId contains ":i-" or which has a
// sessionContext.ec2RoleDelivery key, including records that spell these with
// \u escapes (any record containing a \u escape is decoded).
//
// # Failure handling
//
// Decoders never panic on malformed input. Failures that make a whole
// payload unusable (bad base64, bad gzip, a payload larger than
// Decoder.MaxPayloadBytes, broken envelope JSON) are returned as errors.
// Failures limited to one item (one log event, one Kinesis record) are
// recorded in Batch.Errors and counted in Batch.Malformed, and decoding
// continues with the next item. CloudWatch Logs CONTROL_MESSAGE payloads are
// counted in Batch.Ignored and otherwise skipped.
package cloudtrail
