package stacks

import (
	"context"
	"net/http"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/defenders-cdk/defenders/constructs/guard"
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
}

// FromContext reads the defenders: context of app, resolves the SSH source (context override,
// then checkip, then fail closed) and builds every stack. client may be nil.
func FromContext(ctx context.Context, app awscdk.App, client *http.Client) (*App, error) {
	cfg, err := LoadConfig(NodeGetter(app))
	if err != nil {
		return nil, err
	}
	// Constructs do no network I/O: the SSH source is resolved here and passed in as CIDRs.
	res, err := checkip.Resolve(ctx, client, cfg.SSHCidr, cfg.SSHCidrSet, cfg.CheckipURL)
	if err != nil {
		return nil, err
	}
	return Build(app, cfg, res)
}

// Build adds every Defenders stack to app, with the SSH source already resolved, and turns on the
// cdk-nag AwsSolutions checks so that every synth is also a policy review.
func Build(app awscdk.App, cfg Config, ssh checkip.Resolution) (*App, error) {
	out := &App{Config: cfg, SSH: ssh}
	var err error
	out.Battleground, err = NewBattleground(app, "battleground", &BattlegroundProps{
		Config: cfg, SSHCidrs: ssh.CIDRs, Warning: ssh.Warning,
	})
	if err != nil {
		return nil, err
	}
	bg := out.Battleground.Battleground
	if out.Matt, err = NewDefender(app, "matt", &DefenderProps{Config: cfg, Battleground: bg}); err != nil {
		return nil, err
	}
	// Luke's role lives under the locker's path: the locker keeps his lock true across stop/start.
	if out.Luke, err = NewDefender(app, "luke", &DefenderProps{Config: cfg, Battleground: bg, Lock: true, RolePath: locker.RolePath}); err != nil {
		return nil, err
	}
	var alarmTopic string
	if cfg.Detector {
		if out.Detector, err = NewDetector(app, "detector", cfg); err != nil {
			return nil, err
		}
		alarmTopic = *out.Detector.Detector.Topic().TopicArn()
	}
	if cfg.Locker {
		if out.Locker, err = NewLocker(app, "locker", cfg, alarmTopic); err != nil {
			return nil, err
		}
	}
	// Matt is the deliberate control: the exemption and its reason are in his role's Metadata.
	if err := lock.Exempt(out.Matt.Defender.Instance(), "Matt is the deliberate control of the demo: his credentials are meant to work from anywhere, to show what the lock on Luke stops."); err != nil {
		return nil, err
	}
	guard.Add(app)
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	return out, nil
}
