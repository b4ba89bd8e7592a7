package ec2inventory_test

// Member sessions against the organisation fake: cached until 5 minutes
// before expiry, refreshed once, shared by concurrent callers, bounded,
// and failures classified and remembered.

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/ec2inventory"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

const (
	orgID      = "o-a1b2c3d4e5"
	memberRole = "defenders-inventory"
	memberA    = "777788889999"
	memberB    = "222233334444"
	noStack    = "555566667777"
	outsider   = "999988887777"
)

// simClock is a clock that moves only when told to.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func newSimClock() *simClock { return &simClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)} }

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *simClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

func roleARN(account string) string { return "arn:aws:iam::" + account + ":role/" + memberRole }

// newOrg is an organisation of two members, one member without its stack
// and a foreign account whose role of the same name trusts anyone.
func newOrg(clock *simClock) *lambdatest.Org {
	o := lambdatest.NewOrg(orgID, "eu-west-1", "us-east-1")
	o.Now, o.Wait = clock.Now, clock.Advance
	o.STSLatency = 80 * time.Millisecond
	o.AddAccount(memberA, memberRole)
	o.AddAccount(memberB, memberRole)
	o.AddAccount(noStack, "")
	o.AddForeignAccount(outsider, "o-zzzzzzzzzz", memberRole)
	return o
}

func newSessions(org *lambdatest.Org, clock *simClock, change func(*ec2inventory.SessionOptions)) *ec2inventory.MemberSessions {
	o := ec2inventory.SessionOptions{RoleARN: roleARN, Now: clock.Now, Sleep: clock.Sleep}
	if change != nil {
		change(&o)
	}
	return ec2inventory.NewMemberSessions(org, o)
}

func TestMemberSessionsAreCachedUntilFiveMinutesBeforeExpiry(t *testing.T) {
	clock := newSimClock()
	org := newOrg(clock)
	s := newSessions(org, clock, nil)
	first, err := s.Credentials(t.Context(), memberA)
	if err != nil {
		t.Fatal(err)
	}
	if lambdatest.MemberAccount(first.AccessKeyID) != memberA || first.AccountID != memberA || !first.CanExpire {
		t.Fatalf("credentials %+v are not member A's", first)
	}
	for _, d := range []time.Duration{time.Minute, 20 * time.Minute, 33 * time.Minute} { // 54 minutes in
		clock.Advance(d)
		c, err := s.Credentials(t.Context(), memberA)
		if err != nil || c.AccessKeyID != first.AccessKeyID {
			t.Fatalf("at +%v: %v, %v: want the cached session", d, c.AccessKeyID, err)
		}
	}
	if n := org.Stats().AssumeRoleBy[memberA]; n != 1 {
		t.Fatalf("%d AssumeRole calls within the first 55 minutes, want 1", n)
	}
	clock.Advance(2 * time.Minute) // 56 minutes: within 5 minutes of expiry
	c, err := s.Credentials(t.Context(), memberA)
	if err != nil || c.AccessKeyID == first.AccessKeyID || !c.Expires.After(first.Expires) {
		t.Fatalf("56 minutes in: %v %v, %v: want a fresh session", c.AccessKeyID, c.Expires, err)
	}
	if st := s.Stats(); st.AssumeRoleCalls != 2 || st.Refreshes != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestConcurrentCallersShareOneAssumeRole: many callers of one account,
// cold and then at refresh time, make one AssumeRole each time; callers of
// other accounts are not held up behind it.
func TestConcurrentCallersShareOneAssumeRole(t *testing.T) {
	org := lambdatest.NewOrg(orgID, "eu-west-1")
	org.STSLatency = 30 * time.Millisecond // real time: the callers really overlap
	org.AddAccount(memberA, memberRole)
	org.AddAccount(memberB, memberRole)
	var now time.Time
	var mu sync.Mutex
	base := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		if now.IsZero() {
			return time.Now()
		}
		return now
	}
	org.Now = clock
	s := ec2inventory.NewMemberSessions(org, ec2inventory.SessionOptions{RoleARN: roleARN, Now: clock})
	storm := func(account string, n int) []string {
		var wg sync.WaitGroup
		keys := make([]string, n)
		for i := range n {
			wg.Go(func() {
				c, err := s.Credentials(context.Background(), account)
				if err != nil {
					t.Error(err)
				}
				keys[i] = c.AccessKeyID
			})
		}
		wg.Wait()
		return keys
	}
	storm(memberA, 50)
	if n := org.Stats().AssumeRoleBy[memberA]; n != 1 {
		t.Fatalf("50 concurrent cold callers made %d AssumeRole calls, want 1", n)
	}
	mu.Lock()
	now = base.Add(57 * time.Minute) // time to refresh
	mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { storm(memberA, 50) })
	wg.Go(func() { storm(memberB, 10) })
	wg.Wait()
	st := org.Stats()
	if st.AssumeRoleBy[memberA] != 2 || st.AssumeRoleBy[memberB] != 1 {
		t.Errorf("AssumeRole calls %v: want one refresh of A and one for B", st.AssumeRoleBy)
	}
	if s.Stats().Coalesced == 0 {
		t.Errorf("no caller waited for a shared AssumeRole: %+v", s.Stats())
	}
}

func TestMemberSessionFailuresAreClassifiedAndRemembered(t *testing.T) {
	clock := newSimClock()
	org := newOrg(clock)
	s := newSessions(org, clock, nil)
	t.Run("an account without the member role is denied, and the denial is remembered for 5 minutes", func(t *testing.T) {
		for range 20 {
			if _, err := s.Credentials(t.Context(), noStack); !errors.Is(err, detect.ErrAccountDenied) {
				t.Fatalf("err = %v, want ErrAccountDenied", err)
			}
		}
		if n := org.Stats().AssumeRoleBy[noStack]; n != 1 {
			t.Errorf("%d AssumeRole calls for 20 records, want 1", n)
		}
		org.SetRoleName(noStack, memberRole) // the member stack is deployed
		clock.Advance(5*time.Minute + time.Second)
		if _, err := s.Credentials(t.Context(), noStack); err != nil {
			t.Errorf("5 minutes after the stack was deployed: %v", err)
		}
	})
	t.Run("a role of the same name in another organisation is denied", func(t *testing.T) {
		if _, err := s.Credentials(t.Context(), outsider); !errors.Is(err, detect.ErrAccountDenied) {
			t.Errorf("err = %v, want ErrAccountDenied", err)
		}
	})
	t.Run("throttling is transient: unavailable, retried after a second, then after two", func(t *testing.T) {
		throttled := lambdatest.OrgError("Throttling", "Rate exceeded")
		org.FailAssumeRole(memberB, throttled, throttled)
		_, err := s.Credentials(t.Context(), memberB)
		if !errors.Is(err, detect.ErrAccountUnavailable) || errors.Is(err, detect.ErrAccountDenied) {
			t.Fatalf("err = %v, want ErrAccountUnavailable", err)
		}
		if _, err := s.Credentials(t.Context(), memberB); !errors.Is(err, detect.ErrAccountUnavailable) || org.Stats().AssumeRoleBy[memberB] != 1 {
			t.Fatalf("within the retry delay: %v, %d calls", err, org.Stats().AssumeRoleBy[memberB])
		}
		clock.Advance(1100 * time.Millisecond)
		if _, err := s.Credentials(t.Context(), memberB); err == nil || org.Stats().AssumeRoleBy[memberB] != 2 {
			t.Fatalf("after a second: %v, %d calls, want the second (failing) call", err, org.Stats().AssumeRoleBy[memberB])
		}
		clock.Advance(1100 * time.Millisecond)
		if _, err := s.Credentials(t.Context(), memberB); err == nil {
			t.Fatalf("1.1 s after the second failure: want the failure remembered (2 s)")
		}
		clock.Advance(time.Second)
		if _, err := s.Credentials(t.Context(), memberB); err != nil {
			t.Errorf("after the backoff: %v", err)
		}
	})
	t.Run("a failed refresh serves the still valid session", func(t *testing.T) {
		c0, _ := s.Credentials(t.Context(), memberA)
		clock.Advance(56 * time.Minute)
		org.FailAssumeRole(memberA, lambdatest.OrgError("InternalFailure", "boom"))
		c1, err := s.Credentials(t.Context(), memberA)
		if err != nil || c1.AccessKeyID != c0.AccessKeyID {
			t.Fatalf("refresh failed: %v, %v: want the old, still valid session", c1.AccessKeyID, err)
		}
		clock.Advance(5 * time.Minute) // expired, and the failure's retry delay is over
		c2, err := s.Credentials(t.Context(), memberA)
		if err != nil || c2.AccessKeyID == c0.AccessKeyID {
			t.Errorf("after expiry: %v, %v: want a new session", c2.AccessKeyID, err)
		}
	})
}

func TestMemberSessionsAreBounded(t *testing.T) {
	clock := newSimClock()
	org := lambdatest.NewOrg(orgID, "eu-west-1")
	org.Now = clock.Now
	accounts := []string{"100000000001", "100000000002", "100000000003", "100000000004", "100000000005"}
	for _, a := range accounts {
		org.AddAccount(a, memberRole)
	}
	s := newSessions(org, clock, func(o *ec2inventory.SessionOptions) { o.MaxSessions = 3 })
	for _, a := range accounts {
		if _, err := s.Credentials(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Sessions != 3 || st.Evictions != 2 {
		t.Errorf("stats %+v: want 3 sessions kept", st)
	}
	// The least recently used (the first) was forgotten: one more AssumeRole.
	_, _ = s.Credentials(t.Context(), accounts[0])
	_, _ = s.Credentials(t.Context(), accounts[4])
	if st := org.Stats(); st.AssumeRoleBy[accounts[0]] != 2 || st.AssumeRoleBy[accounts[4]] != 1 {
		t.Errorf("AssumeRole calls %v", st.AssumeRoleBy)
	}
}

func TestTheAssumeRoleRateLimitPacesAndRefuses(t *testing.T) {
	clock := newSimClock()
	org := lambdatest.NewOrg(orgID, "eu-west-1")
	org.Now = clock.Now
	var accounts []string
	for i := range 6 {
		a := "10000000000" + string(rune('0'+i))
		accounts = append(accounts, a)
		org.AddAccount(a, memberRole)
	}
	// Burst 2, then one every 500 ms: a cold container meeting 6 accounts
	// one after the other is paced, not failed.
	s := newSessions(org, clock, func(o *ec2inventory.SessionOptions) { o.Rate, o.Burst, o.MaxWait = 2, 2, time.Second })
	start := clock.Now()
	for _, a := range accounts {
		if _, err := s.Credentials(t.Context(), a); err != nil {
			t.Fatalf("%s: %v", a, err)
		}
	}
	if st := s.Stats(); st.AssumeRoleCalls != 6 || st.RateWaits != 4 || st.RateRefused != 0 {
		t.Errorf("stats %+v", st)
	}
	if d := clock.Now().Sub(start); d != 2*time.Second {
		t.Errorf("waited %v in all, want 4 waits of 500 ms", d)
	}
	// A caller that may not wait (MaxWait < 0, or its deadline) is refused
	// once the burst is spent: unavailable, so the record is retried.
	s = newSessions(org, clock, func(o *ec2inventory.SessionOptions) { o.Rate, o.Burst, o.MaxWait = 2, 2, -1 })
	var refused int
	for _, a := range accounts {
		if _, err := s.Credentials(t.Context(), a); err != nil {
			if !errors.Is(err, detect.ErrAccountUnavailable) {
				t.Fatalf("%s: %v", a, err)
			}
			refused++
		}
	}
	if st := s.Stats(); st.AssumeRoleCalls != 2 || refused != 4 || st.RateRefused != 4 {
		t.Errorf("stats %+v, %d refused", st, refused)
	}
}

func TestTheSessionPolicyIsPassed(t *testing.T) {
	clock := newSimClock()
	var got *sts.AssumeRoleInput
	api := stsFunc(func(_ context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
		got = in
		return newOrg(clock).AssumeRole(context.Background(), in)
	})
	s := ec2inventory.NewMemberSessions(api, ec2inventory.SessionOptions{RoleARN: roleARN, Now: clock.Now,
		Policy: func() (string, error) { return `{"Version":"2012-10-17"}`, nil }})
	if _, err := s.Credentials(t.Context(), memberA); err != nil {
		t.Fatal(err)
	}
	if aws.ToString(got.Policy) != `{"Version":"2012-10-17"}` || aws.ToString(got.RoleArn) != roleARN(memberA) ||
		aws.ToString(got.RoleSessionName) != ec2inventory.DefaultSessionName || aws.ToInt32(got.DurationSeconds) != 3600 {
		t.Errorf("AssumeRole input %+v", got)
	}
}

type stsFunc func(context.Context, *sts.AssumeRoleInput, ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)

func (f stsFunc) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, o ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	return f(ctx, in, o...)
}

// TestWithCredentialsSignsWithTheMemberSession runs the real SDK clients
// against the Cloud fake over the wire: the shared regional EC2 client,
// signed per call with a member's session from the Cloud's STS, sees that
// member's instances, and without it the detector's own.
func TestWithCredentialsSignsWithTheMemberSession(t *testing.T) {
	cloud := lambdatest.NewCloud(t)
	cloud.AddMember(memberA, memberRole)
	cloud.AddMember(noStack, "")
	cloud.PutInstance(lambdatest.Instance{ID: "i-0a0a0a0a0a0a0a0a0", State: "running", VPC: "vpc-0a", PublicIP: "198.51.100.1", PrivateIP: "10.0.0.1"})
	cloud.PutInstance(lambdatest.Instance{ID: "i-0b0b0b0b0b0b0b0b0", State: "running", VPC: "vpc-0b", PublicIP: "198.51.100.2", PrivateIP: "10.0.0.2", Account: memberA})
	cfg := aws.Config{Region: lambdatest.Region, Credentials: credentials.NewStaticCredentialsProvider("AKIAOWNACCOUNT000001", "secret", "")}
	ec2c := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(cloud.EC2.URL) })
	stsc := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(cloud.STS.URL) })
	s := ec2inventory.NewMemberSessions(stsc, ec2inventory.SessionOptions{RoleARN: roleARN})
	ids := func(api ec2inventory.API) []string {
		out, err := api.DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range out.Reservations {
			for _, i := range r.Instances {
				got = append(got, aws.ToString(i.InstanceId))
			}
		}
		return got
	}
	if got := ids(ec2inventory.WithCredentials(ec2c, s.Provider(memberA))); len(got) != 1 || got[0] != "i-0b0b0b0b0b0b0b0b0" {
		t.Errorf("member A sees %v", got)
	}
	if got := ids(ec2c); len(got) != 1 || got[0] != "i-0a0a0a0a0a0a0a0a0" {
		t.Errorf("the detector's own credentials see %v", got)
	}
	regions, err := ec2inventory.EnabledRegions(t.Context(), ec2inventory.WithCredentials(ec2c, s.Provider(memberA)), 0)
	if err != nil || len(regions) == 0 {
		t.Errorf("member regions %v, %v", regions, err)
	}
	_, err = ec2inventory.WithCredentials(ec2c, s.Provider(noStack)).DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{})
	if !errors.Is(err, detect.ErrAccountDenied) {
		t.Errorf("an account without the member role: %v, want ErrAccountDenied through the SDK", err)
	}
	calls := cloud.STS.Calls("AssumeRole")
	if len(calls) != 2 || calls[0].Form.Get("RoleArn") != roleARN(memberA) {
		t.Errorf("AssumeRole calls %+v", calls)
	}
}
