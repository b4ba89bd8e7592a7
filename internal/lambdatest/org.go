package lambdatest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
)

// Org is an in-process AWS Organization for the organisation-mode tests
// of the detector: member accounts, each with an EC2 fake per region, and
// an STS whose AssumeRole hands out per-account sessions of their member
// role. Its EC2 front end (EC2As) answers with the account the session's
// access key belongs to, per region, as Cloud answers per region by the
// SigV4 scope: a detector that signed a call with the wrong account's
// session sees that account's instances, exactly the mistake the tests
// are after.
//
// It behaves like AWS where the detector's behaviour depends on it:
//
//   - AssumeRole answers AccessDenied (403) for an account without the
//     member role (its member stack is missing), for another role name, and
//     for an account of another organisation (the detector role's policy
//     allows sts:AssumeRole only with aws:ResourceOrgID equal to the
//     organisation's id); sessions last DurationSeconds (900 to 3600, the
//     role chaining cap) on the Org's clock, and EC2 refuses an expired one
//     (ExpiredToken);
//   - every STS and EC2 call takes a latency (Wait, e.g. a simulated
//     clock's Advance);
//   - AssumeRole is throttled by a token bucket (STSRate, STSBurst: the
//     security account's STS request quota, "Throttling", 400), and each
//     EC2 action by one per account and region (EC2Rate, EC2Burst, as EC2
//     does for non-mutating actions: "RequestLimitExceeded", 503);
//   - FailAssumeRole scripts the next AssumeRole answers of an account.
//
// It is safe for concurrent use; configure it before use.
type Org struct {
	// ID is the organisation's id (o-...).
	ID string
	// STSLatency and EC2Latency are what each call costs, spent with Wait
	// (time.Sleep when nil).
	STSLatency, EC2Latency time.Duration
	Wait                   func(time.Duration)
	// Now is the clock of session expiry and of the throttling buckets
	// (time.Now when nil).
	Now func() time.Time
	// STSRate and STSBurst bound AssumeRole calls (0: no bound).
	STSRate  float64
	STSBurst int
	// EC2Rate and EC2Burst bound each EC2 action per account and region
	// (0: no bound; EC2's non-mutating actions refill 20 a second into a
	// bucket of 100).
	EC2Rate  float64
	EC2Burst int

	regions []string

	mu       sync.Mutex
	accounts map[string]*OrgAccount
	sessions map[string]orgSession // access key -> session
	issued   int
	buckets  map[string]*bucket // "sts" and "ec2/ACCOUNT/REGION/ACTION"
	failNext map[string][]error
	stats    OrgStats
}

// OrgAccount is an account that an Org knows.
type OrgAccount struct {
	// ID is the account id.
	ID string
	// OrgID is the organisation the account belongs to.
	OrgID string
	// RoleName is the member role's name, "" when the member stack is
	// missing.
	RoleName string

	ec2 map[string]*EC2
}

// orgSession is a session AssumeRole handed out.
type orgSession struct {
	account string
	expires time.Time
}

// OrgStats counts the calls an Org answered.
type OrgStats struct {
	AssumeRole        int            // AssumeRole calls, answered or refused
	AssumeRoleBy      map[string]int // per account
	AssumeRoleDenied  int            // answered AccessDenied
	AssumeRoleThrottl int            // answered Throttling
	EC2               map[string]int // EC2 calls per action
	EC2Throttled      int            // EC2 calls answered RequestLimitExceeded
	EC2Expired        int            // EC2 calls signed with an expired session
	EC2Unknown        int            // EC2 calls signed with a key no session has
}

// NewOrg returns an empty organisation whose accounts have the enabled
// regions regions.
func NewOrg(id string, regions ...string) *Org {
	return &Org{ID: id, regions: slices.Clone(regions), accounts: map[string]*OrgAccount{},
		sessions: map[string]orgSession{}, buckets: map[string]*bucket{}, failNext: map[string][]error{},
		stats: OrgStats{AssumeRoleBy: map[string]int{}, EC2: map[string]int{}}}
}

// AddAccount adds an account of the organisation whose member role is
// roleName ("": the member stack is missing).
func (o *Org) AddAccount(id, roleName string) *OrgAccount {
	return o.AddForeignAccount(id, o.ID, roleName)
}

// AddForeignAccount adds an account of organisation orgID with a role
// named roleName (which may trust the detector: only the detector's own
// policy keeps it from being assumed).
func (o *Org) AddForeignAccount(id, orgID, roleName string) *OrgAccount {
	o.mu.Lock()
	defer o.mu.Unlock()
	a := &OrgAccount{ID: id, OrgID: orgID, RoleName: roleName, ec2: map[string]*EC2{}}
	o.accounts[id] = a
	return a
}

// SetRoleName changes an account's member role ("" deletes it).
func (o *Org) SetRoleName(account, roleName string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if a := o.accounts[account]; a != nil {
		a.RoleName = roleName
	}
}

// EC2 returns the EC2 fake of an account's region, creating it (with the
// organisation's regions enabled).
func (o *Org) EC2(account, region string) *EC2 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ec2Locked(account, region)
}

func (o *Org) ec2Locked(account, region string) *EC2 {
	a := o.accounts[account]
	if a == nil {
		return nil
	}
	f := a.ec2[region]
	if f == nil {
		f = &EC2{}
		var rs []ec2types.Region
		for _, r := range o.regions {
			rs = append(rs, ec2types.Region{RegionName: aws.String(r), OptInStatus: aws.String("opt-in-not-required")})
		}
		f.SetRegions(rs...)
		a.ec2[region] = f
	}
	return f
}

// FailAssumeRole makes the next AssumeRole calls of account answer errs in
// turn (nil: answered normally).
func (o *Org) FailAssumeRole(account string, errs ...error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failNext[account] = append(o.failNext[account], errs...)
}

// Stats returns a copy of the counters.
func (o *Org) Stats() OrgStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.stats
	s.AssumeRoleBy = make(map[string]int, len(o.stats.AssumeRoleBy))
	for k, v := range o.stats.AssumeRoleBy {
		s.AssumeRoleBy[k] = v
	}
	s.EC2 = make(map[string]int, len(o.stats.EC2))
	for k, v := range o.stats.EC2 {
		s.EC2[k] = v
	}
	return s
}

func (o *Org) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Org) wait(d time.Duration) {
	if d <= 0 {
		return
	}
	if o.Wait != nil {
		o.Wait(d)
		return
	}
	time.Sleep(d)
}

// bucket is a token bucket on the Org's clock.
type bucket struct {
	tokens float64
	last   time.Time
}

// take takes a token of the bucket key, reporting false when it is empty.
// Called with o.mu held.
func (o *Org) take(key string, rate float64, burst int) bool {
	if rate <= 0 {
		return true
	}
	now := o.now()
	b := o.buckets[key]
	if b == nil {
		b = &bucket{tokens: float64(burst), last: now}
		o.buckets[key] = b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(burst), b.tokens+d.Seconds()*rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// OrgError is an error as the SDK returns AWS's answers.
func OrgError(code, format string, args ...any) error {
	fault := smithy.FaultClient
	if code == "RequestLimitExceeded" || code == "InternalError" || code == "ServiceUnavailable" {
		fault = smithy.FaultServer
	}
	return &smithy.GenericAPIError{Code: code, Message: fmt.Sprintf(format, args...), Fault: fault}
}

// MemberAccessKeyID returns the access key of the n-th session of account:
// "ASIA", the account, then n in 4 hex digits (20 characters, like AWS's).
func MemberAccessKeyID(account string, n int) string {
	return fmt.Sprintf("ASIA%s%04X", account, n&0xffff)
}

// AssumeRole is sts.Client.AssumeRole for the organisation's member roles
// (see Org).
func (o *Org) AssumeRole(_ context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	o.wait(o.STSLatency)
	o.mu.Lock()
	defer o.mu.Unlock()
	arn := aws.ToString(in.RoleArn)
	parts := strings.SplitN(arn, ":", 6)
	account, name := "", ""
	if len(parts) == 6 && parts[0] == "arn" && parts[2] == "iam" && strings.HasPrefix(parts[5], "role/") {
		account, name = parts[4], strings.TrimPrefix(parts[5], "role/")
	}
	o.stats.AssumeRole++
	o.stats.AssumeRoleBy[account]++
	if !o.take("sts", o.STSRate, o.STSBurst) {
		o.stats.AssumeRoleThrottl++
		return nil, OrgError("Throttling", "Rate exceeded")
	}
	if q := o.failNext[account]; len(q) > 0 {
		o.failNext[account] = q[1:]
		if q[0] != nil {
			if IsCode(q[0], "AccessDenied") {
				o.stats.AssumeRoleDenied++
			} else if IsCode(q[0], "Throttling") {
				o.stats.AssumeRoleThrottl++
			}
			return nil, q[0]
		}
	}
	if account == "" || aws.ToString(in.RoleSessionName) == "" {
		return nil, OrgError("ValidationError", "RoleArn %q and RoleSessionName are required", arn)
	}
	secs := int32(3600)
	if in.DurationSeconds != nil {
		secs = *in.DurationSeconds
	}
	if secs < 900 || secs > 3600 {
		return nil, OrgError("ValidationError", "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.")
	}
	a := o.accounts[account]
	if a == nil || a.OrgID != o.ID || a.RoleName == "" || a.RoleName != name {
		o.stats.AssumeRoleDenied++
		return nil, OrgError("AccessDenied", "User: arn:aws:sts::%s:assumed-role/defenders-detector/detector is not authorized to perform: sts:AssumeRole on resource: %s",
			Account, arn)
	}
	o.issued++
	key := MemberAccessKeyID(account, o.issued)
	exp := o.now().Add(time.Duration(secs) * time.Second)
	o.sessions[key] = orgSession{account: account, expires: exp}
	return &sts.AssumeRoleOutput{
		Credentials: &ststypes.Credentials{AccessKeyId: aws.String(key), SecretAccessKey: aws.String("secret/" + key),
			SessionToken: aws.String("token/" + key), Expiration: aws.Time(exp)},
		AssumedRoleUser: &ststypes.AssumedRoleUser{AssumedRoleId: aws.String("AROAMEMBER:" + aws.ToString(in.RoleSessionName)),
			Arn: aws.String("arn:aws:sts::" + account + ":assumed-role/" + name + "/" + aws.ToString(in.RoleSessionName))},
	}, nil
}

// IsCode reports whether err is an AWS error with code.
func IsCode(err error, code string) bool {
	var ae smithy.APIError
	return err != nil && errors.As(err, &ae) && ae.ErrorCode() == code
}

// EC2As returns the EC2 API of region as a client signing with creds sees
// it: each call resolves creds, finds the account its access key belongs
// to, and is answered by that account's EC2 fake of region.
func (o *Org) EC2As(region string, creds aws.CredentialsProvider) *OrgEC2 {
	return &OrgEC2{org: o, region: region, creds: creds}
}

// OrgEC2 is an Org's EC2 front end for one region and credentials. It
// implements ec2inventory.API and ec2inventory.RegionsAPI.
type OrgEC2 struct {
	org    *Org
	region string
	creds  aws.CredentialsProvider
}

// resolve signs a call of op: the account's EC2 of the region, or the
// error AWS would answer.
func (e *OrgEC2) resolve(ctx context.Context, op string) (*EC2, error) {
	c, err := e.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("failed to retrieve credentials: %w", err) // as the SDK's signer does
	}
	e.org.wait(e.org.EC2Latency)
	o := e.org
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stats.EC2[op]++
	s, ok := o.sessions[c.AccessKeyID]
	switch {
	case !ok:
		o.stats.EC2Unknown++
		return nil, OrgError("AuthFailure", "AWS was not able to validate the provided access credentials")
	case !o.now().Before(s.expires):
		o.stats.EC2Expired++
		return nil, OrgError("ExpiredToken", "The security token included in the request is expired")
	case !slices.Contains(o.regions, e.region):
		return nil, OrgError("AuthFailure", "AWS was not able to validate the provided access credentials")
	case !o.take("ec2/"+s.account+"/"+e.region+"/"+op, o.EC2Rate, o.EC2Burst):
		o.stats.EC2Throttled++
		return nil, OrgError("RequestLimitExceeded", "Request limit exceeded.")
	}
	return o.ec2Locked(s.account, e.region), nil
}

// DescribeInstances is ec2.Client.DescribeInstances.
func (e *OrgEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, o ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f, err := e.resolve(ctx, "DescribeInstances")
	if err != nil {
		return nil, err
	}
	return f.DescribeInstances(ctx, in, o...)
}

// DescribeNatGateways is ec2.Client.DescribeNatGateways.
func (e *OrgEC2) DescribeNatGateways(ctx context.Context, in *ec2.DescribeNatGatewaysInput, o ...func(*ec2.Options)) (*ec2.DescribeNatGatewaysOutput, error) {
	f, err := e.resolve(ctx, "DescribeNatGateways")
	if err != nil {
		return nil, err
	}
	return f.DescribeNatGateways(ctx, in, o...)
}

// DescribeVpcEndpoints is ec2.Client.DescribeVpcEndpoints.
func (e *OrgEC2) DescribeVpcEndpoints(ctx context.Context, in *ec2.DescribeVpcEndpointsInput, o ...func(*ec2.Options)) (*ec2.DescribeVpcEndpointsOutput, error) {
	f, err := e.resolve(ctx, "DescribeVpcEndpoints")
	if err != nil {
		return nil, err
	}
	return f.DescribeVpcEndpoints(ctx, in, o...)
}

// DescribeRegions is ec2.Client.DescribeRegions.
func (e *OrgEC2) DescribeRegions(ctx context.Context, in *ec2.DescribeRegionsInput, o ...func(*ec2.Options)) (*ec2.DescribeRegionsOutput, error) {
	f, err := e.resolve(ctx, "DescribeRegions")
	if err != nil {
		return nil, err
	}
	return f.DescribeRegions(ctx, in, o...)
}

// MemberAccount returns the account of an access key MemberAccessKeyID
// made, "" for any other key.
func MemberAccount(accessKeyID string) string {
	if len(accessKeyID) != 20 || !strings.HasPrefix(accessKeyID, "ASIA") {
		return ""
	}
	a := accessKeyID[4:16]
	if _, err := strconv.ParseUint(a, 10, 64); err != nil {
		return ""
	}
	return a
}

// Member accounts of a Cloud (over the wire)
//
// A Cloud is the detector's own account; AddMember gives it member
// accounts of an organisation, so that a shipped detector in organisation
// mode can be run against it: AssumeRole of a member's role answers a
// session whose access key (MemberAccessKeyID) the EC2 endpoint maps back
// to the member, whose instances are the Cloud's instances with that
// Account; a member without the role, and an account the Cloud does not
// know, answer AccessDenied.

// AddMember makes account a member of the Cloud's organisation with a
// member role named roleName ("": its member stack is missing).
func (c *Cloud) AddMember(account, roleName string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.members == nil {
		c.members = map[string]string{}
	}
	c.members[account] = roleName
}

// callerAccount is the account whose credentials signed req. Called with
// c.mu held.
func (c *Cloud) callerAccount(req *Request) string {
	if a := MemberAccount(req.AccessKeyID); a != "" && c.members != nil {
		if _, ok := c.members[a]; ok {
			return a
		}
	}
	return Account
}

// inAccount reports whether in belongs to the account that signed req.
// Called with c.mu held.
func (c *Cloud) inAccount(in *Instance, req *Request) bool {
	a := in.Account
	if a == "" {
		a = Account
	}
	return a == c.callerAccount(req)
}

// assumeMemberRole answers AssumeRole of a role in another account than
// the Cloud's own, once AddMember was called. ok is false for requests it
// leaves to the Cloud's own AssumeRole. Called with c.mu held.
func (c *Cloud) assumeMemberRole(req *Request) (answer string, ok bool, err error) {
	arn := req.Get("RoleArn")
	parts := strings.SplitN(arn, ":", 6)
	if c.members == nil || len(parts) != 6 || parts[4] == Account {
		return "", false, nil
	}
	account, name := parts[4], strings.TrimPrefix(parts[5], "role/")
	role, member := c.members[account]
	if !member || role == "" || role != name {
		return "", true, Errorf(http.StatusForbidden, "AccessDenied",
			"User: arn:aws:sts::%s:assumed-role/lambdatest-function/lambdatest is not authorized to perform: sts:AssumeRole on resource: %s", Account, arn)
	}
	c.issued++
	key := MemberAccessKeyID(account, c.issued)
	session := req.Get("RoleSessionName")
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	return fmt.Sprintf("<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>secret/%s</SecretAccessKey><SessionToken>token/%s</SessionToken><Expiration>%s</Expiration></Credentials>"+
		"<AssumedRoleUser><AssumedRoleId>AROAMEMBER:%s</AssumedRoleId><Arn>arn:aws:sts::%s:assumed-role/%s/%s</Arn></AssumedRoleUser><PackedPolicySize>10</PackedPolicySize>",
		key, key, key, exp, XMLText(session), account, XMLText(name), XMLText(session)), true, nil
}
