package locker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// Locker keeps the locks of managed roles true. It is safe for concurrent
// use; each call builds its own Report.
type Locker struct {
	cfg Config
}

// New returns a Locker, filling in defaults. It fails if EC2, IAM or
// CloudFormation is missing or a setting is negative.
func New(c Config) (*Locker, error) {
	if c.EC2 == nil || c.IAM == nil || c.CloudFormation == nil {
		return nil, errors.New("locker: new: Config.EC2, Config.IAM and Config.CloudFormation are required")
	}
	if c.MaxAttempts < 0 || c.NotFoundAttempts < 0 || c.MaxPasses < 0 ||
		c.BaseDelay < 0 || c.MaxDelay < 0 || c.NotFoundDelay < 0 {
		return nil, errors.New("locker: new: attempts, passes and delays must not be negative")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.RolePath == "" {
		c.RolePath = ManagedPathPrefix
	}
	if !rolePathPattern.MatchString(c.RolePath) {
		return nil, fmt.Errorf("locker: new: role path %q must look like /defenders/: start and end with /, and not be / (every role)", c.RolePath)
	}
	if c.PolicyName == "" {
		c.PolicyName = PolicyName
	}
	if !policyNamePattern.MatchString(c.PolicyName) {
		return nil, fmt.Errorf("locker: new: %q is not an IAM policy name", c.PolicyName)
	}
	trust, err := c.Trust.Validate(nil)
	if err != nil {
		return nil, fmt.Errorf("locker: new: Config.Trust: %w", err)
	}
	c.Trust = trust
	def(&c.MaxAttempts, DefaultMaxAttempts)
	def(&c.NotFoundAttempts, DefaultNotFoundAttempts)
	def(&c.MaxPasses, DefaultMaxPasses)
	defDur(&c.BaseDelay, DefaultBaseDelay)
	defDur(&c.MaxDelay, DefaultMaxDelay)
	defDur(&c.NotFoundDelay, DefaultNotFoundDelay)
	if c.Sleep == nil {
		c.Sleep = sleepContext
	}
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
	return &Locker{cfg: c}, nil
}

// NewFromConfig returns a Locker over real EC2, IAM and CloudFormation
// clients built from cfg. The clients are built with SDK retries off (one
// attempt per call), because the Locker retries itself, with bounds and
// counters; leaving both on would multiply the attempts. c.EC2, c.IAM and
// c.CloudFormation are ignored.
func NewFromConfig(cfg aws.Config, c Config) (*Locker, error) {
	c.EC2 = ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
	c.IAM = iam.NewFromConfig(cfg, func(o *iam.Options) { o.RetryMaxAttempts = 1 })
	c.CloudFormation = cloudformation.NewFromConfig(cfg, func(o *cloudformation.Options) { o.RetryMaxAttempts = 1 })
	return New(c)
}

// Handle parses an EventBridge event (see ParseEvent) and handles it. The
// returned error is non-nil when the event is invalid, when the event
// itself could not be processed, or when any role ended in ActionError;
// the Report is filled in as far as the locker got in every case.
func (l *Locker) Handle(ctx context.Context, raw json.RawMessage) (Report, error) {
	ev, err := ParseEvent(raw)
	if err != nil {
		return Report{Calls: map[string]int{}}, err
	}
	return l.HandleEvent(ctx, ev)
}

// HandleEvent handles a parsed event: a state change or an API call locks
// the roles of the instance it names (see "Which instances" in the package
// doc), a scheduled event reconciles every managed role.
func (l *Locker) HandleEvent(ctx context.Context, ev Event) (Report, error) {
	rep := Report{Event: ev, Calls: map[string]int{}}
	r := newRun(l, &rep)
	var err error
	switch ev.Kind {
	case KindStateChange:
		err = r.stateChange(ctx, ev)
	case KindAPICall:
		err = r.apiCall(ctx, ev)
	case KindScheduled:
		err = r.reconcileAll(ctx)
	default:
		err = fmt.Errorf("locker: handle event: %w: kind %q", ErrUnsupportedEvent, ev.Kind)
	}
	return rep, errors.Join(err, rep.Err())
}

// Reconcile updates the lock of every managed role (see the package doc
// for how they are found).
func (l *Locker) Reconcile(ctx context.Context) (Report, error) {
	return l.HandleEvent(ctx, Event{Kind: KindScheduled})
}

// managed reports whether a role with this IAM path is managed: its path
// starts with Config.RolePath. No other role is ever written.
func (l *Locker) managed(path string) bool {
	return strings.HasPrefix(path, l.cfg.RolePath)
}
