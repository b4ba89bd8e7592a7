package detectorfn

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/ec2inventory"
	"github.com/defenders-cdk/defenders/internal/lambdarun"
)

// Start is the detector's cold start: it reads the settings through
// getenv (detect.LoadSettings), loads the AWS configuration, locked to the
// function's address if DEFENDERS_LOCKDOWN asks for it
// (lambdarun.AWSConfig), and builds the handler, which logs to log and
// writes its EMF records to out. An error means the function must not run.
func Start(ctx context.Context, getenv func(string) string, log *slog.Logger, out io.Writer) (*Handler, error) {
	s, err := detect.LoadSettings(getenv)
	if err != nil {
		return nil, err
	}
	cfg, p, err := lambdarun.AWSConfig(ctx, getenv, s.Lockdown, s.SelfRoleARN)
	if err != nil {
		return nil, fmt.Errorf("detector: %w", err)
	}
	if p != nil {
		addr, exp := p.Address()
		log.Info("credentials locked", "address", addr.String(), "expires", exp.Format(time.RFC3339))
	}
	if s.Region == "" {
		s.Region = cfg.Region
	}
	if s.Region == "" {
		return nil, fmt.Errorf("detector: no region: %s is not set", detect.EnvRegion)
	}
	return New(s, ClientsFromConfig(cfg), log, out), nil
}

// Clients are the AWS clients the handler uses.
type Clients struct {
	EC2     ec2inventory.API                     // the function's region
	EC2In   func(region string) ec2inventory.API // the EC2 API of another region
	Regions ec2inventory.RegionsAPI              // DescribeRegions
	SNS     SNSAPI
	SQS     SQSAPI
}

// ClientsFromConfig builds the AWS clients from cfg.
func ClientsFromConfig(cfg aws.Config) Clients {
	home := ec2.NewFromConfig(cfg)
	return Clients{
		EC2: home,
		EC2In: func(region string) ec2inventory.API {
			if region == cfg.Region {
				return home
			}
			return ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.Region = region })
		},
		Regions: home,
		// detect.PublishAll retries publishes itself, with backoff and
		// knowledge of which SNS errors are permanent: one retry layer,
		// with bounds the handler controls.
		SNS: sns.NewFromConfig(cfg, func(o *sns.Options) { o.Retryer = aws.NopRetryer{} }),
		// The dead-letter queue is the last resort: the SDK's standard
		// retries, with short backoffs so that they fit the deadline.
		SQS: sqs.NewFromConfig(cfg, func(o *sqs.Options) {
			o.Retryer = retry.AddWithMaxBackoffDelay(retry.NewStandard(), time.Second)
		}),
	}
}

// New wires the detector: the settings s, the clients c, the logger log
// and out for the EMF records.
func New(s detect.Settings, c Clients, log *slog.Logger, out io.Writer) *Handler {
	return newHandler(s, c, log, out, clock{})
}

// clock is the time source of the wiring; nil fields are the real clock.
// Tests inject a fake one to replay hours of traffic in milliseconds.
type clock struct {
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error // waits for the inventory's rate limit
}

// newHandler is New with the clock k.
func newHandler(s detect.Settings, c Clients, log *slog.Logger, out io.Writer, k clock) *Handler {
	// One cached inventory per region, each with the same TTL, rate
	// limits and negative caching; the function's region is asked first.
	regional := func(api ec2inventory.API, region string) detect.Inventory {
		return detect.NewCachedInventory(
			ec2inventory.New(api, ec2inventory.Options{VPCTTL: s.InventoryTTL, Region: region, Now: k.now}),
			detect.CacheOptions{TTL: s.InventoryTTL, Now: k.now, Sleep: k.sleep},
		)
	}
	inv := detect.NewMultiRegionInventory(regional(c.EC2, s.Region), detect.RegionOptions{
		HomeRegion: s.Region,
		Regions: func(ctx context.Context) ([]string, error) {
			return ec2inventory.EnabledRegions(ctx, c.Regions, 0)
		},
		Allowed:   s.Regions,
		Inventory: func(region string) detect.Inventory { return regional(c.EC2In(region), region) },
		Now:       k.now,
	})
	proc := detect.NewProcessor(inv, detect.Config{
		Policy:       s.Policy(), // the app's trusted egress prefixes and shared VPC endpoints
		Self:         detect.Self{RoleARNs: nonEmpty(s.SelfRoleARN)},
		Account:      detect.AccountFromARN(s.SelfRoleARN),
		Region:       s.Region,
		DedupeWindow: s.DedupeWindow,
		Now:          k.now,
	})
	return &Handler{
		proc: proc,
		pub:  &snsPublisher{api: c.SNS, topicARN: s.TopicARN},
		dlq:  &deadLetterQueue{api: c.SQS, url: s.DLQURL, topicARN: s.TopicARN},
		log:  log,
		out:  out,
		now:  k.now,
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
