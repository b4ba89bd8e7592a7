package stacks

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/constructs/locker"
	"github.com/defenders-cdk/defenders/internal/checkip"
)

// App is the set of Defenders stacks in one CDK app.
type App struct {
	Config       Config
	SSH          checkip.Resolution
	Battleground *BattlegroundStack
	Matt, Luke   *DefenderStack
	Detector     *DetectorStack // nil when defenders:detector is false
	Locker       *LockerStack   // nil when defenders:locker is false
	// Organization holds the stacks of organisation mode (nil unless defenders:organizationId
	// is set); its central stack's detector then replaces Detector (nil).
	Organization *OrganizationStacks
}

// FromContext reads the defenders: context of app, resolves the SSH source (context override,
// then checkip, then fail closed) and builds every stack. client may be nil.
func FromContext(ctx context.Context, app awscdk.App, client *http.Client) (*App, error) {
	all, _ := app.Node().GetAllContext(nil).(map[string]any)
	if err := CheckKeys(all); err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(MapGetter(all))
	if err != nil {
		return nil, err
	}
	if cfg.MaxAzs > 2 {
		// The CDK CLI sets these from the credentials and region of the profile in use.
		cfg.Account, cfg.Region = os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION")
	}
	// Constructs do no network I/O: the SSH source is resolved here and passed in as CIDRs.
	res, err := checkip.Resolve(ctx, client, cfg.SSHCIDR, cfg.SSHCIDRSet, cfg.CheckipURL)
	if err != nil {
		return nil, err
	}
	return Build(app, cfg, res)
}

// Build adds every Defenders stack to app, with the SSH source already resolved, and turns on the
// cdk-nag AwsSolutions checks so that every synth is also a policy review.
func Build(app awscdk.App, cfg Config, ssh checkip.Resolution) (*App, error) {
	out := &App{Config: cfg, SSH: ssh}
	if cfg.MaxAzs > 2 && (cfg.Account == "" || cfg.Region == "") {
		return nil, fmt.Errorf("context %s: %d Availability Zones need an environment-specific stack (an environment-agnostic one gets 2): "+
			"run cdk with credentials and a region (the CLI then sets CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION and records the zones in cdk.context.json, which you commit), "+
			"or use at most 2", KeyMaxAzs, cfg.MaxAzs)
	}
	env := stackEnv(cfg)
	var err error
	out.Battleground, err = NewBattleground(app, cfg.StackName("battleground"), &BattlegroundProps{
		StackProps: awscdk.StackProps{Env: env},
		Config:     cfg, SSHCIDRs: ssh.CIDRs, Warning: ssh.Warning,
	})
	if err != nil {
		return nil, err
	}
	bg := out.Battleground.Battleground
	if out.Matt, err = NewDefender(app, cfg.StackName("matt"), &DefenderProps{StackProps: awscdk.StackProps{Env: env}, Config: cfg, Battleground: bg}); err != nil {
		return nil, err
	}
	// Luke's role lives under the locker's path: the locker keeps his lock true across stop/start.
	if out.Luke, err = NewDefender(app, cfg.StackName("luke"), &DefenderProps{StackProps: awscdk.StackProps{Env: env}, Config: cfg, Battleground: bg, Lock: true, RolePath: locker.RolePath}); err != nil {
		return nil, err
	}
	var alarmTopic string
	if cfg.Organization.Enabled() {
		// One detector for the administrator account and the organisation: the central one.
		if out.Organization, err = NewOrganization(app, cfg); err != nil {
			return nil, err
		}
		alarmTopic = *out.Organization.Central.Detector.Topic().TopicArn()
	} else if cfg.Detector {
		if out.Detector, err = NewDetector(app, cfg.StackName("detector"), cfg); err != nil {
			return nil, err
		}
		alarmTopic = *out.Detector.Detector.Topic().TopicArn()
	}
	if cfg.Locker {
		if out.Locker, err = NewLocker(app, cfg.StackName("locker"), cfg, alarmTopic); err != nil {
			return nil, err
		}
		// Deployed after Luke and destroyed before him: nothing rewrites Luke's lock while
		// CloudFormation deletes his stack (the locker also checks the stack status itself).
		out.Locker.AddDependency(out.Luke.Stack, jsii.String("the locker is destroyed before the roles it manages"))
	}
	// Matt is the deliberate control: the exemption and its reason are in his role's Metadata.
	if err := lock.Exempt(out.Matt.Defender.Instance(), "Matt is the deliberate control of the demo: his credentials are meant to work from anywhere, to show what the lock on Luke stops."); err != nil {
		return nil, err
	}
	// The guard is not added here: it judges the synthesized templates, so main synthesizes with
	// guard.Synth (constructs/guard), which fails on an error finding.
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	return out, nil
}

// stackEnv is the stacks' environment: nil (environment-agnostic) unless both are known.
func stackEnv(cfg Config) *awscdk.Environment {
	if cfg.Account == "" || cfg.Region == "" {
		return nil
	}
	return &awscdk.Environment{Account: jsii.String(cfg.Account), Region: jsii.String(cfg.Region)}
}
