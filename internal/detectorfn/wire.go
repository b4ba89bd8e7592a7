package detectorfn

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/ec2inventory"
	"github.com/defenders-cdk/defenders/internal/lambdarun"
	"github.com/defenders-cdk/defenders/internal/lockdown"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/internal/shadowrun"
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
	c := ClientsFromConfig(cfg)
	if s.Organization() && p != nil {
		// The locked session may not call sts:AssumeRole (lockpolicy's
		// SheddingActions): member sessions are assumed with the
		// function's own credentials, as lockdown refreshes its own, and
		// locked to the function's address with the same session policy,
		// so that they are worthless elsewhere too.
		orig, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("detector: load the AWS configuration: %w", err)
		}
		lo, err := lockdown.OptionsFromEnv(getenv)
		if err != nil {
			return nil, fmt.Errorf("detector: %w", err)
		}
		c.STS = sts.NewFromConfig(orig)
		c.MemberSessionPolicy = func() (string, error) {
			addr, _ := p.Address()
			doc, err := lockpolicy.SessionPolicy(addr, lo.VPCs)
			if err != nil {
				return "", err
			}
			b, err := doc.JSON()
			return string(b), err
		}
	}
	shadow, err := shadowrun.FromEnv(getenv)
	if err != nil {
		return nil, fmt.Errorf("detector: %w", err)
	}
	if shadow != nil {
		log.Info("shadow mode", "mode", shadow.Mode(), "proposal", shadow.Proposal())
	}
	return New(s, c, log, out, shadow), nil
}

// Clients are the AWS clients the handler uses.
type Clients struct {
	EC2     ec2inventory.API                     // the function's region
	EC2In   func(region string) ec2inventory.API // the EC2 API of another region
	Regions ec2inventory.RegionsAPI              // DescribeRegions
	SNS     SNSAPI
	SQS     SQSAPI

	// Organisation mode only (detect.Settings.Organization):

	// STS assumes the member role in the member accounts.
	STS ec2inventory.STSAPI
	// MemberEC2 returns the EC2 API of region signed with creds (a member
	// account's session).
	MemberEC2 func(region string, creds aws.CredentialsProvider) ec2inventory.MemberAPI
	// MemberSessionPolicy, when set, is the session policy of every member
	// session (lockdown's, see Start).
	MemberSessionPolicy func() (string, error)
}

// ClientsFromConfig builds the AWS clients from cfg.
func ClientsFromConfig(cfg aws.Config) Clients {
	home := ec2.NewFromConfig(cfg)
	// One EC2 client per region, shared by every member account (each
	// call is signed with the account's session: ec2inventory.WithCredentials).
	var mu sync.Mutex
	regional := map[string]*ec2.Client{cfg.Region: home}
	client := func(region string) *ec2.Client {
		mu.Lock()
		defer mu.Unlock()
		c, ok := regional[region]
		if !ok {
			region = strings.Clone(region) // kept for good: do not pin the payload a record's region came from
			c = ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.Region = region })
			regional[region] = c
		}
		return c
	}
	return Clients{
		STS: sts.NewFromConfig(cfg),
		MemberEC2: func(region string, creds aws.CredentialsProvider) ec2inventory.MemberAPI {
			return ec2inventory.WithCredentials(client(region), creds)
		},
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
// and out for the EMF records, and shadow mode's runner (nil: off; every
// judged record is shown to it and its report written at the end of each
// invocation).
func New(s detect.Settings, c Clients, log *slog.Logger, out io.Writer, shadow *shadowrun.Runner) *Handler {
	h := newHandler(s, c, log, out, clock{shadow: shadow})
	return h
}

// clock is the time source of the wiring; nil fields are the real clock.
// Tests inject a fake one to replay hours of traffic in milliseconds, and
// may shrink the organisation mode's bounds (zero: the defaults).
type clock struct {
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error // waits for the inventory's rate limit

	orgMaxAccounts, orgMaxInstances int // detect.OrgOptions
	maxSessions                     int // ec2inventory.SessionOptions.MaxSessions

	shadow *shadowrun.Runner // shadow mode (New's argument), nil: off
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
	cfg := detect.Config{
		Policy:       s.Policy(), // the app's trusted egress prefixes and shared VPC endpoints
		Self:         detect.Self{RoleARNs: nonEmpty(s.SelfRoleARN)},
		Account:      detect.AccountFromARN(s.SelfRoleARN),
		Region:       s.Region,
		DedupeWindow: s.DedupeWindow,
		Now:          k.now,
	}
	if k.shadow != nil {
		cfg.Shadow = k.shadow
	}
	h := &Handler{
		pub:    &snsPublisher{api: c.SNS, topicARN: s.TopicARN},
		dlq:    &deadLetterQueue{api: c.SQS, url: s.DLQURL, topicARN: s.TopicARN},
		log:    log,
		out:    out,
		now:    k.now,
		shadow: k.shadow,
	}
	if s.Organization() {
		h.sessions, h.org = organization(s, c, k)
		cfg.Org = h.org
	}
	h.proc = detect.NewProcessor(inv, cfg)
	return h
}

// organization wires organisation mode: the member sessions, and for each
// member account a MultiRegionInventory like the detector's own, over the
// shared regional EC2 clients signed with the account's session, with
// smaller per-region caches; the Organization bounds the whole (see
// detect.OrgOptions for the limits).
func organization(s detect.Settings, c Clients, k clock) (*ec2inventory.MemberSessions, *detect.Organization) {
	sessions := ec2inventory.NewMemberSessions(c.STS, ec2inventory.SessionOptions{
		RoleARN: s.MemberRoleARN, Policy: c.MemberSessionPolicy, MaxSessions: k.maxSessions,
		Now: k.now, Sleep: k.sleep,
	})
	regional := func(api ec2inventory.API, region string) detect.Inventory {
		return detect.NewCachedInventory(
			ec2inventory.New(api, ec2inventory.Options{VPCTTL: s.InventoryTTL, Region: region, Now: k.now, MaxVPCs: orgMaxVPCs}),
			detect.CacheOptions{TTL: s.InventoryTTL, Now: k.now, Sleep: k.sleep, MaxEntries: detect.DefaultOrgRegionMaxEntries},
		)
	}
	org := detect.NewOrganization(detect.OrgOptions{
		Access: func(ctx context.Context, account string) error {
			_, err := sessions.Credentials(ctx, account)
			return err
		},
		Inventory: func(account string) detect.Inventory {
			creds := sessions.Provider(account)
			home := c.MemberEC2(s.Region, creds)
			return detect.NewMultiRegionInventory(regional(home, s.Region), detect.RegionOptions{
				HomeRegion: s.Region,
				Regions: func(ctx context.Context) ([]string, error) {
					return ec2inventory.EnabledRegions(ctx, home, 0)
				},
				Allowed:      s.Regions,
				Inventory:    func(region string) detect.Inventory { return regional(c.MemberEC2(region, creds), region) },
				MaxLocations: detect.DefaultOrgRegionMaxEntries,
				HintFirst:    true, // a member's instances live in every region, not mostly in the detector's
				Now:          k.now,
			})
		},
		MaxAccounts:  k.orgMaxAccounts,
		MaxInstances: k.orgMaxInstances,
	})
	return sessions, org
}

// orgMaxVPCs bounds the VPC cache of each member account-region (a VPC
// entry exists only for an instance looked up there).
const orgMaxVPCs = 200

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
