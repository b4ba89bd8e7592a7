// Package lockdown makes a Lambda function lock its own credentials.
//
// On cold start (and before the locked credentials expire) the function
// finds the public address AWS sees for it, by asking a checkip-style
// service (internal/checkip, https://checkip.amazonaws.com by default), and
// calls sts:AssumeRole on its OWN role with a session policy (see
// SessionPolicy) that denies every call from any other address, every call
// through a VPC endpoint outside the listed VPCs, and every STS call that
// could mint credentials without the session policy. The function then uses
// only these locked credentials: if they leak (logs, an SSRF, a dependency),
// they are worthless anywhere else.
//
// Failure is an error, never a silent fallback: Provider.Retrieve returns
// locked credentials or an error, and Lock fails the cold start if the
// first lock fails. Locked credentials that are still valid may be served
// while a refresh fails (they are locked, so that is safe).
//
// # What the construct must set up
//
// The role must trust itself. Its trust policy needs, besides the Lambda
// service principal, a statement
//
//	{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::ACCOUNT:role/PATH/NAME"}, "Action": "sts:AssumeRole"}
//
// with the role's own ARN (since 2022 a role is no longer implicitly
// trusted by itself). sts:TagSession is not needed: no session tags are
// passed. Grant sts:AssumeRole on the role's own ARN in its identity policy
// too (IAM limits what a trust policy grants to a role ARN principal by the
// role's identity policy; the grant allows assuming nothing else). The
// role's MaxSessionDuration does not limit role chaining,
// which STS caps at one hour; Options.Duration must be 15 minutes to 1 hour.
//
// Environment (see OptionsFromEnv): EnvRoleARN should hold the role's ARN.
// Without it the ARN is derived from sts:GetCallerIdentity, which drops the
// role's path, so that fallback only works for roles at path "/". EnvVPCs
// lists the VPC ids of a function attached to a VPC: its calls through VPC
// endpoints of those VPCs are then allowed; its internet calls leave
// through a NAT gateway, whose address is what checkip sees and is shared
// with every other host behind that NAT. EnvCheckipURL overrides the
// lookup URL.
//
// # Limits
//
// The function's original credentials (the Lambda environment variables)
// are not locked: they are needed to refresh. Code that can read the
// process environment can still steal those. The lock protects the
// credentials the code actually hands to the SDK, i.e. what leaks through
// the code's own behaviour. The lookup must leave over the same path as the
// AWS calls: checkip.amazonaws.com is IPv4 only, so do not enable dual-stack
// endpoints. If the function's egress address changes, calls are denied
// until the next refresh (fail closed); Provider.Invalidate forces one.
package lockdown

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/defenders-cdk/defenders/internal/checkip"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"

	"github.com/defenders-cdk/defenders/internal/contract"
)

// Environment variables read by OptionsFromEnv.
const (
	// EnvRoleARN holds the function role's full ARN, path included.
	EnvRoleARN = contract.EnvRoleARN
	// EnvVPCs holds comma-separated VPC ids whose endpoints may be used.
	EnvVPCs = contract.EnvLockdownVPCs
	// EnvCheckipURL overrides checkip.DefaultURL.
	EnvCheckipURL = contract.EnvCheckipURL
	// EnvDuration holds the session duration (Go syntax, e.g. "30m").
	EnvDuration = contract.EnvLockdownDuration
)

// Durations and defaults.
const (
	// MinDuration is the shortest session STS issues.
	MinDuration = 15 * time.Minute
	// MaxDuration is the longest session of a chained role.
	MaxDuration = time.Hour
	// DefaultDuration is the default session duration.
	DefaultDuration = time.Hour
	// DefaultRefreshBefore is how long before expiry a new session is made.
	DefaultRefreshBefore = 5 * time.Minute
	// DefaultSessionName is the role session name of locked sessions.
	DefaultSessionName = "defenders-lockdown"
	// CredentialsSource is aws.Credentials.Source of locked credentials.
	CredentialsSource = "DefendersLockdown"
)

// STSAPI is the part of the STS client lockdown uses. *sts.Client
// implements it. It must be configured with the function's original
// credentials, never with the locked ones (which cannot call AssumeRole).
type STSAPI interface {
	// AssumeRole is sts.Client.AssumeRole.
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
	// GetCallerIdentity is sts.Client.GetCallerIdentity.
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, optFns ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

var _ STSAPI = (*sts.Client)(nil)

// AddressFinder returns the public address AWS sees for this process.
type AddressFinder func(ctx context.Context) (netip.Prefix, error)

// CheckipFinder returns an AddressFinder that asks a checkip-style service
// at url (checkip.DefaultURL if empty) with client (nil: checkip's default).
func CheckipFinder(client *http.Client, url string) AddressFinder {
	if url == "" {
		url = checkip.DefaultURL
	}
	return func(ctx context.Context) (netip.Prefix, error) {
		p, _, err := checkip.Lookup(ctx, client, url)
		return p, err
	}
}

// Options configures a Provider. Zero values mean the defaults.
type Options struct {
	// RoleARN is the role to assume: the function's own role. Empty: derived
	// from GetCallerIdentity (only right for roles at path "/").
	RoleARN string
	// VPCs are the VPC ids whose endpoints the session may call through.
	VPCs []string
	// FindAddress finds the address to lock to (default: CheckipFinder(nil,
	// checkip.DefaultURL)).
	FindAddress AddressFinder
	// Duration is the session duration, MinDuration..MaxDuration (default
	// DefaultDuration).
	Duration time.Duration
	// RefreshBefore is how long before expiry Retrieve makes a new session
	// (default DefaultRefreshBefore); it must be less than Duration.
	RefreshBefore time.Duration
	// SessionName is the role session name (default DefaultSessionName).
	SessionName string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

var (
	roleARNPattern     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$`)
	sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

// OptionsFromEnv reads EnvRoleARN, EnvVPCs, EnvCheckipURL and EnvDuration
// through getenv (os.Getenv in a Lambda). Unset variables mean defaults;
// invalid values are errors.
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	var o Options
	if v := strings.TrimSpace(getenv(EnvRoleARN)); v != "" {
		if !roleARNPattern.MatchString(v) {
			return Options{}, fmt.Errorf("lockdown: %s=%q is not a role ARN", EnvRoleARN, v)
		}
		o.RoleARN = v
	}
	if v := strings.TrimSpace(getenv(EnvVPCs)); v != "" {
		for _, id := range strings.Split(v, ",") {
			id = strings.TrimSpace(id)
			if !lockpolicy.IsVPCID(id) {
				return Options{}, fmt.Errorf("lockdown: %s: %q is not a VPC id", EnvVPCs, id)
			}
			o.VPCs = append(o.VPCs, id)
		}
	}
	if v := strings.TrimSpace(getenv(EnvCheckipURL)); v != "" {
		o.FindAddress = CheckipFinder(nil, v)
	}
	if v := strings.TrimSpace(getenv(EnvDuration)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return Options{}, fmt.Errorf("lockdown: %s: %w", EnvDuration, err)
		}
		o.Duration = d
	}
	return o, nil
}

// RoleARNFromCallerARN turns the ARN GetCallerIdentity returns for a role
// session (arn:PARTITION:sts::ACCOUNT:assumed-role/NAME/SESSION) into the
// role's ARN (arn:PARTITION:iam::ACCOUNT:role/NAME). The role's path is not
// part of the session ARN and is lost: pass the real ARN in EnvRoleARN for
// roles with a path.
func RoleARNFromCallerARN(callerARN string) (string, error) {
	parts := strings.SplitN(callerARN, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sts" || len(parts[4]) != 12 {
		return "", fmt.Errorf("lockdown: %q is not an STS ARN", callerARN)
	}
	res := strings.Split(parts[5], "/")
	if len(res) != 3 || res[0] != "assumed-role" || res[1] == "" {
		return "", fmt.Errorf("lockdown: %q is not an assumed-role session", callerARN)
	}
	return fmt.Sprintf("arn:%s:iam::%s:role/%s", parts[1], parts[4], res[1]), nil
}

// Provider is an aws.CredentialsProvider of locked credentials. It caches
// them and makes a new locked session RefreshBefore before they expire; it
// is safe for concurrent use. Use it directly as aws.Config.Credentials.
// If you wrap it in aws.NewCredentialsCache, set ExpiryWindow to at least
// RefreshBefore, or the cache keeps the credentials until they expire.
type Provider struct {
	sts     STSAPI
	o       Options
	mu      sync.Mutex
	roleARN string
	creds   aws.Credentials
	addr    netip.Prefix
	lastErr error
}

var _ aws.CredentialsProvider = (*Provider)(nil)

// New returns a Provider. It validates the options but calls nothing; the
// first Retrieve locks.
func New(client STSAPI, o Options) (*Provider, error) {
	if client == nil {
		return nil, errors.New("lockdown: new: an STS client is required")
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Duration < MinDuration || o.Duration > MaxDuration {
		return nil, fmt.Errorf("lockdown: new: duration %s is outside %s..%s (role chaining caps sessions at one hour)",
			o.Duration, MinDuration, MaxDuration)
	}
	if o.RefreshBefore == 0 {
		o.RefreshBefore = DefaultRefreshBefore
	}
	if o.RefreshBefore < 0 || o.RefreshBefore >= o.Duration {
		return nil, fmt.Errorf("lockdown: new: refresh %s before expiry must be positive and shorter than the duration %s", o.RefreshBefore, o.Duration)
	}
	if o.SessionName == "" {
		o.SessionName = DefaultSessionName
	}
	if !sessionNamePattern.MatchString(o.SessionName) {
		return nil, fmt.Errorf("lockdown: new: %q is not a valid role session name", o.SessionName)
	}
	if o.RoleARN != "" && !roleARNPattern.MatchString(o.RoleARN) {
		return nil, fmt.Errorf("lockdown: new: %q is not a role ARN", o.RoleARN)
	}
	for _, v := range o.VPCs {
		if !lockpolicy.IsVPCID(v) {
			return nil, fmt.Errorf("lockdown: new: %q is not a VPC id", v)
		}
	}
	if o.FindAddress == nil {
		o.FindAddress = CheckipFinder(nil, checkip.DefaultURL)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Provider{sts: client, o: o, roleARN: o.RoleARN}, nil
}

// Retrieve returns locked credentials. It returns the cached ones until
// RefreshBefore before they expire, then locks a new session: find the
// address, render SessionPolicy, AssumeRole. If that fails while the
// cached credentials are still valid, those are returned (they are locked)
// and LastError reports the failure; otherwise the error is returned. It
// never returns credentials without the session policy.
func (p *Provider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.o.Now()
	if p.creds.HasKeys() && now.Before(p.creds.Expires.Add(-p.o.RefreshBefore)) {
		return p.creds, nil
	}
	creds, addr, err := p.lock(ctx, now)
	if err != nil {
		p.lastErr = err
		if p.creds.HasKeys() && now.Before(p.creds.Expires) {
			return p.creds, nil
		}
		return aws.Credentials{}, err
	}
	p.creds, p.addr, p.lastErr = creds, addr, nil
	return creds, nil
}

// Invalidate drops the cached credentials: the next Retrieve locks a new
// session (e.g. after an AccessDenied that suggests the egress address
// changed).
func (p *Provider) Invalidate() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.creds = aws.Credentials{}
}

// Address returns the address the current credentials are locked to, and
// their expiry (zero values before the first lock).
func (p *Provider) Address() (netip.Prefix, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr, p.creds.Expires
}

// LastError returns the error of the last failed refresh, or nil once a
// refresh succeeded.
func (p *Provider) LastError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// lock makes one locked session.
func (p *Provider) lock(ctx context.Context, now time.Time) (aws.Credentials, netip.Prefix, error) {
	if p.roleARN == "" {
		out, err := p.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return aws.Credentials{}, netip.Prefix{}, fmt.Errorf("lockdown: find own role: %w", err)
		}
		arn, err := RoleARNFromCallerARN(aws.ToString(out.Arn))
		if err != nil {
			return aws.Credentials{}, netip.Prefix{}, fmt.Errorf("lockdown: find own role (set %s): %w", EnvRoleARN, err)
		}
		p.roleARN = arn
	}
	addr, err := p.o.FindAddress(ctx)
	if err != nil {
		return aws.Credentials{}, netip.Prefix{}, fmt.Errorf("lockdown: find the address AWS sees: %w", err)
	}
	policy, err := SessionPolicy(addr, p.o.VPCs)
	if err != nil {
		return aws.Credentials{}, netip.Prefix{}, err
	}
	out, err := p.sts.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:         aws.String(p.roleARN),
		RoleSessionName: aws.String(p.o.SessionName),
		DurationSeconds: aws.Int32(int32(p.o.Duration / time.Second)),
		Policy:          aws.String(string(policy)),
	})
	if err != nil {
		return aws.Credentials{}, netip.Prefix{}, fmt.Errorf("lockdown: assume %s with the session policy: %w", p.roleARN, err)
	}
	c := out.Credentials
	if c == nil || aws.ToString(c.AccessKeyId) == "" || aws.ToString(c.SecretAccessKey) == "" ||
		aws.ToString(c.SessionToken) == "" || c.Expiration == nil {
		return aws.Credentials{}, netip.Prefix{}, fmt.Errorf("lockdown: assume %s: STS returned incomplete credentials", p.roleARN)
	}
	if !c.Expiration.After(now.Add(p.o.RefreshBefore)) {
		return aws.Credentials{}, netip.Prefix{}, fmt.Errorf("lockdown: assume %s: credentials expire at %s, within the refresh window",
			p.roleARN, c.Expiration.Format(time.RFC3339))
	}
	return aws.Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken:    aws.ToString(c.SessionToken),
		Source:          CredentialsSource,
		CanExpire:       true,
		Expires:         *c.Expiration,
	}, addr, nil
}

// Lock is the cold-start helper for a Lambda main: it builds a Provider
// over an STS client made from cfg (the function's original credentials),
// locks once, and returns a copy of cfg whose Credentials are the Provider.
// It fails if the first lock fails, so the function cannot start unlocked.
func Lock(ctx context.Context, cfg aws.Config, o Options) (aws.Config, *Provider, error) {
	p, err := New(sts.NewFromConfig(cfg), o)
	if err != nil {
		return aws.Config{}, nil, err
	}
	if _, err := p.Retrieve(ctx); err != nil {
		return aws.Config{}, nil, err
	}
	locked := cfg.Copy()
	locked.Credentials = p
	return locked, p, nil
}
