// Command detector is the Defenders detector Lambda (the bootstrap of the
// constructs/detector construct). It reads CloudTrail records delivered by
// EventBridge, a CloudWatch Logs subscription or a Kinesis stream, and
// publishes an alert to SNS when EC2 instance-profile credentials are used
// from an address their instance does not have.
//
// The logic lives in internal/cloudtrail (decoding), internal/detect
// (decisions, deduplication, publishing with retries) and
// internal/ec2inventory (the EC2 inventory); this package wires them to
// the AWS clients and the Lambda runtime, and owns the delivery guarantees
// (see handler.go): every alert is published to SNS or, failing that, sent
// to the dead-letter queue, and if even that fails the invocation fails so
// that Lambda retries it and finally dead-letters the event itself.
//
// Environment (set by the construct):
//
//	DEFENDERS_TOPIC_ARN      SNS topic of the alerts (required)
//	DEFENDERS_DLQ_URL        SQS dead-letter queue URL (required)
//	DEFENDERS_DEDUPE_WINDOW  alert deduplication window, Go duration (default 1h; 0 disables)
//	DEFENDERS_INVENTORY_TTL  EC2 inventory cache TTL, Go duration (default 10m)
//	DEFENDERS_SELF_ROLE_ARN  the function's role: its own calls are skipped, and its account is the detector's
//	DEFENDERS_LOCKDOWN       "true": lock the function's credentials to its address at cold start (internal/lockdown)
//	DEFENDERS_REGIONS        optional, comma-separated: the regions searched besides the function's own (default: every enabled region)
//
// Accounts and regions: instance sessions of other accounts (an
// organisation trail) are skipped and counted (SkippedOtherAccount), never
// judged against this account's inventory. The account is the one of
// DEFENDERS_SELF_ROLE_ARN, else of the invoked function's ARN. An instance
// that is not in the function's region is looked up in the account's other
// enabled regions (ec2:DescribeRegions once per container, then
// ec2:DescribeInstances per region, the record's awsRegion first) and the
// record judged against the region it lives in; if that lookup fails the
// record is undecided (RegionLookupFailed) and the invocation is retried.
//
// Output: structured JSON logs (log/slog) and CloudWatch embedded metric
// format records in namespace Defenders/Detector, both on stdout.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/ec2inventory"
	"github.com/defenders-cdk/defenders/internal/lockdown"
)

// initTimeout bounds the cold start (Lambda allows 10 s for init).
const initTimeout = 8 * time.Second

func main() {
	log := newLogger(os.Stdout, os.Getenv("AWS_LAMBDA_LOG_LEVEL"))
	h, err := setup(log)
	if err != nil {
		// Fail closed: without its configuration or locked credentials
		// the function must not run. Lambda reports the failed init and
		// retries the event.
		log.Error("init failed", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h)
}

// setup reads the settings, loads the AWS configuration (locked if asked)
// and builds the handler.
func setup(log *slog.Logger) (*handler, error) {
	s, err := loadSettings(os.Getenv)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), initTimeout)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("detector: load the AWS configuration: %w", err)
	}
	if s.Lockdown {
		opts, err := lockdown.OptionsFromEnv(os.Getenv)
		if err != nil {
			return nil, fmt.Errorf("detector: lockdown: %w", err)
		}
		if opts.RoleARN == "" {
			opts.RoleARN = s.SelfRoleARN
		}
		locked, p, err := lockdown.Lock(ctx, cfg, opts)
		if err != nil {
			return nil, fmt.Errorf("detector: lock the function's credentials: %w", err)
		}
		addr, exp := p.Address()
		log.Info("credentials locked", "address", addr.String(), "expires", exp.Format(time.RFC3339))
		cfg = locked
	}
	if s.Region == "" {
		s.Region = cfg.Region
	}
	if s.Region == "" {
		return nil, fmt.Errorf("detector: no region: %s is not set", EnvRegion)
	}
	return newHandler(s, clients(cfg), log), nil
}

// clients builds the AWS clients from cfg.
func clients(cfg aws.Config) awsClients {
	home := ec2.NewFromConfig(cfg)
	return awsClients{
		ec2: home,
		ec2In: func(region string) ec2inventory.API {
			if region == cfg.Region {
				return home
			}
			return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.Region = region })
		},
		regions: home,
		// detect.PublishAll retries publishes itself, with backoff and
		// knowledge of which SNS errors are permanent: one retry layer,
		// with bounds the handler controls.
		sns: sns.NewFromConfig(cfg, func(o *sns.Options) { o.Retryer = aws.NopRetryer{} }),
		// The dead-letter queue is the last resort: the SDK's standard
		// retries, with short backoffs so that they fit the deadline.
		sqs: sqs.NewFromConfig(cfg, func(o *sqs.Options) {
			o.Retryer = retry.AddWithMaxBackoffDelay(retry.NewStandard(), time.Second)
		}),
	}
}

// awsClients are the clients the handler uses.
type awsClients struct {
	ec2     ec2inventory.API                     // the function's region
	ec2In   func(region string) ec2inventory.API // the EC2 API of another region
	regions ec2inventory.RegionsAPI              // DescribeRegions
	sns     snsAPI
	sqs     sqsAPI
}

// newHandler wires the detector.
func newHandler(s settings, c awsClients, log *slog.Logger) *handler {
	// One cached inventory per region, each with the same TTL, rate
	// limits and negative caching; the function's region is asked first.
	regional := func(api ec2inventory.API, region string) detect.Inventory {
		return detect.NewCachedInventory(
			ec2inventory.New(api, ec2inventory.Options{VPCTTL: s.InventoryTTL, Region: region}),
			detect.CacheOptions{TTL: s.InventoryTTL},
		)
	}
	inv := detect.NewMultiRegionInventory(regional(c.ec2, s.Region), detect.RegionOptions{
		HomeRegion: s.Region,
		Regions: func(ctx context.Context) ([]string, error) {
			return ec2inventory.EnabledRegions(ctx, c.regions, 0)
		},
		Allowed:   s.Regions,
		Inventory: func(region string) detect.Inventory { return regional(c.ec2In(region), region) },
	})
	proc := detect.NewProcessor(inv, detect.Config{
		Self:         detect.Self{RoleARNs: nonEmpty(s.SelfRoleARN)},
		Account:      detect.AccountFromARN(s.SelfRoleARN),
		Region:       s.Region,
		DedupeWindow: s.DedupeWindow,
	})
	return &handler{
		proc: proc,
		pub:  &snsPublisher{api: c.sns, topicARN: s.TopicARN},
		dlq:  &deadLetterQueue{api: c.sqs, url: s.DLQURL, topicARN: s.TopicARN},
		log:  log,
		out:  os.Stdout,
	}
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
