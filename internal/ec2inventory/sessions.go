package ec2inventory

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/defenders-cdk/defenders/internal/detect"

	"github.com/defenders-cdk/defenders/internal/tokenbucket"
)

// Member accounts (organisation mode)
//
// A central detector reads each member account's EC2 inventory through a
// read-only role that the organisation deploys in every account.
// MemberSessions holds the credentials of those roles, one session per
// account, and WithCredentials signs a region's EC2 client with them, so
// that the detector keeps one SDK client per region whatever the number
// of accounts.
//
// Sessions:
//
//   - are assumed on first use and kept until RefreshBefore (5 minutes)
//     before they expire; the first caller past that point refreshes them
//     (once: concurrent callers of one account wait for that one
//     AssumeRole, and callers of other accounts are not held up);
//   - are served while still valid when a refresh fails, so that an STS
//     blip in the last minutes of a session costs nothing;
//   - are bounded: at most MaxSessions accounts (least recently used
//     forgotten first, which costs that account one AssumeRole later);
//   - cost the detector's account at most Rate AssumeRole calls a second
//     (Burst at once), waiting at most MaxWait for a token: the STS request
//     quota is the security account's, shared with everything else there.
//
// Failures are remembered per account, so that a flood of records from one
// account does not become a flood of AssumeRole calls: AccessDenied (the
// member stack is missing, or the account is outside the organisation)
// for DeniedRetry (5 minutes: coverage starts that long after the stack is
// deployed), any other failure for ErrorRetry, doubling up to 30 s. Errors
// wrap detect.ErrAccountDenied or detect.ErrAccountUnavailable, which is
// what the detector's Processor acts on (see "Organisation mode" in
// internal/detect).

// STSAPI is the part of the STS client MemberSessions uses. *sts.Client
// implements it.
type STSAPI interface {
	// AssumeRole is sts.Client.AssumeRole.
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

var _ STSAPI = (*sts.Client)(nil)

// Defaults of SessionOptions.
const (
	DefaultSessionName       = "defenders-detector"
	DefaultSessionDuration   = time.Hour
	DefaultRefreshBefore     = 5 * time.Minute
	DefaultMaxSessions       = 2000
	DefaultDeniedRetry       = 5 * time.Minute
	DefaultSessionErrorRetry = time.Second
	DefaultSessionMaxRetry   = 30 * time.Second
	DefaultAssumeRoleRate    = 10.0
	DefaultAssumeRoleBurst   = 20
	DefaultAssumeRoleMaxWait = 2 * time.Second
	DefaultAssumeRoleTimeout = 5 * time.Second
)

// SessionOptions configures MemberSessions. Zero fields take the defaults.
type SessionOptions struct {
	// RoleARN returns the ARN of the member role in an account. Required.
	RoleARN func(account string) string
	// SessionName is the role session name, which the member accounts'
	// CloudTrail records show (DefaultSessionName).
	SessionName string
	// Duration is the session's lifetime (DefaultSessionDuration; STS caps
	// a chained session, as under lockdown, at one hour).
	Duration time.Duration
	// RefreshBefore is how long before expiry a session is replaced
	// (DefaultRefreshBefore).
	RefreshBefore time.Duration
	// MaxSessions bounds the accounts whose sessions are kept
	// (DefaultMaxSessions).
	MaxSessions int
	// DeniedRetry is how long an AccessDenied is remembered
	// (DefaultDeniedRetry).
	DeniedRetry time.Duration
	// ErrorRetry is how long another failure is remembered, doubling with
	// each failure in a row up to MaxRetry (DefaultSessionErrorRetry,
	// DefaultSessionMaxRetry).
	ErrorRetry, MaxRetry time.Duration
	// Rate and Burst bound the AssumeRole calls as a token bucket
	// (DefaultAssumeRoleRate, DefaultAssumeRoleBurst; a negative Rate: no
	// bound); a call waits at most MaxWait for its token
	// (DefaultAssumeRoleMaxWait) and otherwise fails as unavailable.
	Rate    float64
	Burst   int
	MaxWait time.Duration
	// Timeout bounds each AssumeRole call, the SDK's retries included
	// (DefaultAssumeRoleTimeout).
	Timeout time.Duration
	// Policy, when set, returns the session policy passed with every
	// AssumeRole (the detector's lockdown passes one that locks the
	// member sessions to the function's address).
	Policy func() (string, error)
	// Now is the clock (time.Now); Sleep waits for d or until ctx is done
	// (a timer).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// SessionStats counts what MemberSessions did.
type SessionStats struct {
	AssumeRoleCalls int // AssumeRole calls made
	Hits            int // Credentials calls answered from a valid session
	Coalesced       int // calls that waited for a concurrent AssumeRole of the same account
	Refreshes       int // AssumeRole calls that replaced a session about to expire
	StaleServed     int // calls answered with a still valid session because its refresh failed
	Denied          int // calls answered AccessDenied (by STS or remembered)
	Failed          int // calls answered with another failure (by STS or remembered)
	RateWaits       int // AssumeRole calls that waited for the rate limit
	RateRefused     int // AssumeRole calls refused by the rate limit
	Evictions       int // sessions forgotten to respect MaxSessions
	Sessions        int // accounts whose state is kept now
}

// MemberSessions holds the member role sessions of the organisation's
// accounts. It is safe for concurrent use.
type MemberSessions struct {
	api STSAPI
	o   SessionOptions

	mu       sync.Mutex
	lru      list.List // of *session, most recently used at the front
	accounts map[string]*list.Element
	bucket   *tokenbucket.Bucket // the AssumeRole rate limit
	stats    SessionStats
}

// session is what MemberSessions knows about one account.
type session struct {
	account  string
	creds    aws.Credentials // valid when creds.AccessKeyID != ""
	err      error           // the last failure, while remembered
	retryAt  time.Time       // when err is set: when STS may be asked again
	failures int             // failures in a row
	call     *assumeCall     // the AssumeRole in flight, if any
}

// assumeCall is one AssumeRole that concurrent callers wait for.
type assumeCall struct {
	done  chan struct{}
	creds aws.Credentials
	err   error
}

// NewMemberSessions returns MemberSessions that assume roles with api.
func NewMemberSessions(api STSAPI, o SessionOptions) *MemberSessions {
	if o.SessionName == "" {
		o.SessionName = DefaultSessionName
	}
	if o.Duration <= 0 {
		o.Duration = DefaultSessionDuration
	}
	if o.RefreshBefore <= 0 {
		o.RefreshBefore = DefaultRefreshBefore
	}
	o.RefreshBefore = min(o.RefreshBefore, o.Duration/2)
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	if o.DeniedRetry <= 0 {
		o.DeniedRetry = DefaultDeniedRetry
	}
	if o.ErrorRetry <= 0 {
		o.ErrorRetry = DefaultSessionErrorRetry
	}
	if o.MaxRetry <= 0 {
		o.MaxRetry = DefaultSessionMaxRetry
	}
	if o.Rate == 0 {
		o.Rate = DefaultAssumeRoleRate
	}
	if o.Burst <= 0 {
		o.Burst = DefaultAssumeRoleBurst
	}
	if o.MaxWait == 0 {
		o.MaxWait = DefaultAssumeRoleMaxWait
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultAssumeRoleTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	return &MemberSessions{api: api, o: o, accounts: make(map[string]*list.Element),
		bucket: tokenbucket.New(o.Rate, o.Burst)}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns a snapshot of the counters.
func (m *MemberSessions) Stats() SessionStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.Sessions = len(m.accounts)
	return s
}

// Provider returns the credentials provider of account: each Retrieve is
// Credentials (a map look-up while the session is fresh).
func (m *MemberSessions) Provider(account string) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
		return m.Credentials(ctx, account)
	})
}

// Credentials returns credentials of the member role in account: the
// cached session while it is fresh, otherwise a new one from STS (see
// "Member accounts"). Errors wrap detect.ErrAccountDenied or
// detect.ErrAccountUnavailable.
func (m *MemberSessions) Credentials(ctx context.Context, account string) (aws.Credentials, error) {
	m.mu.Lock()
	now := m.o.Now()
	s := m.session(account)
	fresh := s.creds.AccessKeyID != "" && now.Before(s.creds.Expires.Add(-m.o.RefreshBefore))
	valid := s.creds.AccessKeyID != "" && now.Before(s.creds.Expires)
	switch {
	case fresh:
		m.stats.Hits++
		creds := s.creds
		m.mu.Unlock()
		return creds, nil
	case s.call != nil:
		if valid {
			// Someone is refreshing it: the old session is still good.
			m.stats.Hits++
			creds := s.creds
			m.mu.Unlock()
			return creds, nil
		}
		m.stats.Coalesced++
		c := s.call
		m.mu.Unlock()
		select {
		case <-c.done:
			return c.creds, c.err
		case <-ctx.Done():
			return aws.Credentials{}, fmt.Errorf("%w: %s: %w", detect.ErrAccountUnavailable, account, ctx.Err())
		}
	case s.err != nil && now.Before(s.retryAt):
		if valid {
			m.stats.StaleServed++
			creds := s.creds
			m.mu.Unlock()
			return creds, nil
		}
		m.count(s.err)
		err := s.err
		m.mu.Unlock()
		return aws.Credentials{}, err
	}
	c := &assumeCall{done: make(chan struct{})}
	s.call = c
	refresh := s.creds.AccessKeyID != ""
	m.mu.Unlock()

	creds, err := m.assume(ctx, account)

	m.mu.Lock()
	defer m.mu.Unlock()
	now = m.o.Now()
	if refresh {
		m.stats.Refreshes++
	}
	s.call = nil
	switch {
	case err == nil:
		s.creds, s.err, s.failures = creds, nil, 0
	case ctx.Err() != nil:
		// The caller gave up: says nothing about the account.
	default:
		s.failures++
		s.err = err
		if errors.Is(err, detect.ErrAccountDenied) {
			s.retryAt = now.Add(m.o.DeniedRetry)
		} else {
			s.retryAt = now.Add(m.retryDelay(s.failures))
		}
	}
	if err != nil && s.creds.AccessKeyID != "" && now.Before(s.creds.Expires) {
		m.stats.StaleServed++
		creds, err = s.creds, nil
	}
	if err != nil {
		m.count(err)
	}
	c.creds, c.err = creds, err
	close(c.done)
	return creds, err
}

// count counts a failure answered to a caller. Called with m.mu held.
func (m *MemberSessions) count(err error) {
	if errors.Is(err, detect.ErrAccountDenied) {
		m.stats.Denied++
	} else {
		m.stats.Failed++
	}
}

// retryDelay is ErrorRetry doubled per failure in a row, up to MaxRetry.
func (m *MemberSessions) retryDelay(n int) time.Duration {
	d := m.o.ErrorRetry
	for i := 1; i < n && d < m.o.MaxRetry; i++ {
		d *= 2
	}
	return min(d, m.o.MaxRetry)
}

// session returns the state of account, creating it (and evicting the
// least recently used account beyond MaxSessions). Called with m.mu held.
func (m *MemberSessions) session(account string) *session {
	if el, ok := m.accounts[account]; ok {
		m.lru.MoveToFront(el)
		return el.Value.(*session)
	}
	s := &session{account: strings.Clone(account)}
	m.accounts[s.account] = m.lru.PushFront(s)
	for len(m.accounts) > m.o.MaxSessions {
		el := m.lru.Back()
		old := el.Value.(*session)
		if old.call != nil {
			break // in use: evicted later
		}
		m.lru.Remove(el)
		delete(m.accounts, old.account)
		m.stats.Evictions++
	}
	return s
}

// reserve takes a token of the AssumeRole rate limit; see
// detect.CachedInventory's miss rate limit, which works the same way.
// Called with m.mu held.
func (m *MemberSessions) reserve(now time.Time, maxWait time.Duration) (time.Duration, bool) {
	wait, ok := m.bucket.Reserve(now, maxWait)
	switch {
	case !ok:
		m.stats.RateRefused++
	case wait > 0:
		m.stats.RateWaits++
	}
	return wait, ok
}

// assume calls AssumeRole for account's member role, within the rate
// limit and the timeout, and classifies its failure.
func (m *MemberSessions) assume(ctx context.Context, account string) (aws.Credentials, error) {
	maxWait := m.o.MaxWait
	if d, ok := ctx.Deadline(); ok {
		maxWait = min(maxWait, time.Until(d))
	}
	m.mu.Lock()
	wait, ok := m.reserve(m.o.Now(), maxWait)
	m.mu.Unlock()
	if !ok {
		return aws.Credentials{}, fmt.Errorf("%w: %s: the detector's own AssumeRole rate limit (%.0f a second) is spent",
			detect.ErrAccountUnavailable, account, m.o.Rate)
	}
	if wait > 0 {
		if err := m.o.Sleep(ctx, wait); err != nil {
			return aws.Credentials{}, fmt.Errorf("%w: %s: waiting for the AssumeRole rate limit: %w", detect.ErrAccountUnavailable, account, err)
		}
	}
	in := &sts.AssumeRoleInput{
		RoleArn:         aws.String(m.o.RoleARN(account)),
		RoleSessionName: aws.String(m.o.SessionName),
		DurationSeconds: aws.Int32(int32(m.o.Duration / time.Second)),
	}
	if m.o.Policy != nil {
		p, err := m.o.Policy()
		if err != nil {
			return aws.Credentials{}, fmt.Errorf("%w: %s: session policy: %w", detect.ErrAccountUnavailable, account, err)
		}
		in.Policy = aws.String(p)
	}
	m.mu.Lock()
	m.stats.AssumeRoleCalls++
	m.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, m.o.Timeout)
	defer cancel()
	out, err := m.api.AssumeRole(cctx, in)
	switch {
	case err != nil && IsAccessDenied(err):
		return aws.Credentials{}, fmt.Errorf("%w (%s, AssumeRole %s: %w)", detect.ErrAccountDenied, account, aws.ToString(in.RoleArn), err)
	case err != nil:
		return aws.Credentials{}, fmt.Errorf("%w: %s: AssumeRole %s: %w", detect.ErrAccountUnavailable, account, aws.ToString(in.RoleArn), err)
	case out == nil || out.Credentials == nil || aws.ToString(out.Credentials.AccessKeyId) == "" || out.Credentials.Expiration == nil:
		return aws.Credentials{}, fmt.Errorf("%w: %s: AssumeRole %s answered no credentials", detect.ErrAccountUnavailable, account, aws.ToString(in.RoleArn))
	}
	c := out.Credentials
	return aws.Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken:    aws.ToString(c.SessionToken),
		Source:          "defenders member role " + account,
		CanExpire:       true,
		Expires:         *c.Expiration,
		AccountID:       account,
	}, nil
}

// IsAccessDenied reports whether err is STS's answer that the role may not
// be assumed (it does not exist, its trust policy does not admit the
// caller, or a policy denies the call): AccessDenied.
func IsAccessDenied(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "AccessDenied", "AccessDeniedException":
		return true
	}
	return false
}

// MemberAPI is the EC2 API of one member account and region: API and
// RegionsAPI.
type MemberAPI interface {
	API
	RegionsAPI
}

// WithCredentials returns client with every call signed with creds (a
// member account's session), without a client of its own: the view costs
// a few bytes per account and region, the client (its configuration,
// connections, endpoint resolution) is shared.
func WithCredentials(client *ec2.Client, creds aws.CredentialsProvider) MemberAPI {
	return &signedEC2{c: client, creds: creds}
}

type signedEC2 struct {
	c     *ec2.Client
	creds aws.CredentialsProvider
}

func (s *signedEC2) opts(optFns []func(*ec2.Options)) []func(*ec2.Options) {
	return append(optFns, func(o *ec2.Options) { o.Credentials = s.creds })
}

func (s *signedEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	return s.c.DescribeInstances(ctx, in, s.opts(optFns)...)
}

func (s *signedEC2) DescribeNatGateways(ctx context.Context, in *ec2.DescribeNatGatewaysInput, optFns ...func(*ec2.Options)) (*ec2.DescribeNatGatewaysOutput, error) {
	return s.c.DescribeNatGateways(ctx, in, s.opts(optFns)...)
}

func (s *signedEC2) DescribeVpcEndpoints(ctx context.Context, in *ec2.DescribeVpcEndpointsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVpcEndpointsOutput, error) {
	return s.c.DescribeVpcEndpoints(ctx, in, s.opts(optFns)...)
}

func (s *signedEC2) DescribeRegions(ctx context.Context, in *ec2.DescribeRegionsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error) {
	return s.c.DescribeRegions(ctx, in, s.opts(optFns)...)
}
