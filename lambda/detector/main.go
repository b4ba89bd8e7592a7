// Command detector is the Defenders detector Lambda (the bootstrap of the
// constructs/detector construct). It reads CloudTrail records delivered by
// EventBridge, a CloudWatch Logs subscription or a Kinesis stream, and
// publishes an alert to SNS when EC2 instance-profile credentials are used
// from an address their instance does not have.
//
// The function is internal/detectorfn (cold start, handler, delivery
// guarantees: every alert is published to SNS or, failing that, sent to the
// dead-letter queue, and if even that fails the invocation fails so that
// Lambda retries it and finally dead-letters the event itself), built on
// internal/cloudtrail (decoding), internal/detect (decisions,
// deduplication, publishing with retries) and internal/ec2inventory (the
// EC2 inventory). This package only starts it.
//
// Environment (set by the construct):
//
//	DEFENDERS_TOPIC_ARN      SNS topic of the alerts (required)
//	DEFENDERS_DLQ_URL        SQS dead-letter queue URL (required)
//	DEFENDERS_DEDUPE_WINDOW  alert deduplication window, Go duration (default 1h; 0 disables)
//	DEFENDERS_INVENTORY_TTL  EC2 inventory cache TTL, Go duration (default 10m)
//	DEFENDERS_SELF_ROLE_ARN  the function's role: its own calls are skipped, and its account is the detector's
//	DEFENDERS_LOCKDOWN       "true": lock the function's credentials to its address at cold start (internal/lockdown);
//	                         "true" or "false" in any case, unset is false, anything else fails the start (contract.ParseBool)
//	DEFENDERS_REGIONS        optional, comma-separated: the regions searched besides the function's own (default: every enabled region)
//	DEFENDERS_TRUSTED_EGRESS_PREFIXES  optional, comma-separated public CIDRs every instance may call from (central NAT, proxies)
//	DEFENDERS_SHARED_VPC_ENDPOINTS     optional, comma-separated vpce- ids of shared endpoints, OK from the instance's own private IPv4
//	                         (both are the app's trust, read with lockpolicy.ParseTrust; a bad value fails the start, naming the variable)
//	DEFENDERS_ORGANIZATION_ID   optional: the organisation (o-...) whose member accounts' instance sessions this central detector judges
//	DEFENDERS_MEMBER_ROLE_NAME  with it: the read-only role (path "/") assumed in every member account to read its inventory
//	                         (both or neither; organisation mode needs DEFENDERS_SELF_ROLE_ARN)
//
// Accounts and regions: instance sessions of other accounts (an
// organisation trail) are skipped and counted (SkippedOtherAccount), never
// judged against this account's inventory, unless the function is the
// central detector of an organisation: then each is judged against its own
// account's inventory through the member role (sts:AssumeRole, cached per
// account), an account whose role cannot be assumed raises an
// AccountNotCovered alert, and an STS failure makes the invocation fail so
// that Lambda retries it (see internal/detectorfn, "Organisation mode"). The account is the one of
// DEFENDERS_SELF_ROLE_ARN, else of the invoked function's ARN. An instance
// that is not in the function's region is looked up in the account's other
// enabled regions (ec2:DescribeRegions once per container, then
// ec2:DescribeInstances per region, the record's awsRegion first) and the
// record judged against the region it lives in; if that lookup fails the
// record is undecided (RegionLookupFailed) and the invocation is retried.
//
// A failed start (settings, AWS configuration, or the lockdown asked for)
// is logged ("init failed") and exits the process, as in every Defenders
// Lambda (internal/lambdarun.FailStart): Lambda reports the failed init
// and starts afresh for the next invocation. No event is handled without
// the configuration or the locked credentials.
//
// Output: structured JSON logs (log/slog) and CloudWatch embedded metric
// format records in namespace Defenders/Detector, both on stdout
// (internal/lambdarun, internal/emf).
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/defenders-cdk/defenders/internal/detectorfn"
	"github.com/defenders-cdk/defenders/internal/lambdarun"
)

func main() {
	log := lambdarun.NewLogger(os.Stdout, os.Getenv(lambdarun.EnvLogLevel))
	ctx, cancel := context.WithTimeout(context.Background(), lambdarun.StartTimeout)
	h, err := detectorfn.Start(ctx, os.Getenv, log, os.Stdout)
	cancel()
	if err != nil {
		lambdarun.FailStart(log, err) // exits
	}
	lambda.Start(h)
}
