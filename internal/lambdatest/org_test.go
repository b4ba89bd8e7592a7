package lambdatest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// fakeClock moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func assume(t *testing.T, o *Org, account, role string) (aws.CredentialsProvider, error) {
	t.Helper()
	out, err := o.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::" + account + ":role/" + role),
		RoleSessionName: aws.String("defenders-detector")})
	if err != nil {
		return nil, err
	}
	c := out.Credentials
	return credentials.NewStaticCredentialsProvider(aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken)), nil
}

func instanceIDs(t *testing.T, api interface {
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}) ([]string, error) {
	t.Helper()
	out, err := api.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, r := range out.Reservations {
		for _, i := range r.Instances {
			ids = append(ids, aws.ToString(i.InstanceId))
		}
	}
	return ids, nil
}

func TestOrgAnswersPerAccountLikeAWS(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	o := NewOrg("o-a1b2c3d4e5", "eu-west-1", "us-east-1")
	o.Now, o.Wait = clock.Now, clock.Advance
	o.STSLatency, o.EC2Latency = 100*time.Millisecond, 50*time.Millisecond
	o.AddAccount("777788889999", "defenders-inventory")
	o.AddAccount("222233334444", "defenders-inventory")
	o.AddAccount("555566667777", "")
	o.AddForeignAccount("999988887777", "o-zzzzzzzzzz", "defenders-inventory")
	o.EC2("777788889999", "eu-west-1").PutInstance(ec2types.Instance{InstanceId: aws.String("i-0aaaaaaaaaaaaaaaa")})
	o.EC2("222233334444", "eu-west-1").PutInstance(ec2types.Instance{InstanceId: aws.String("i-0bbbbbbbbbbbbbbbb")})
	o.EC2("222233334444", "us-east-1").PutInstance(ec2types.Instance{InstanceId: aws.String("i-0cccccccccccccccc")})

	a, err := assume(t, o, "777788889999", "defenders-inventory")
	if err != nil {
		t.Fatal(err)
	}
	b, err := assume(t, o, "222233334444", "defenders-inventory")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("each session sees its own account, per region", func(t *testing.T) {
		for _, c := range []struct {
			creds  aws.CredentialsProvider
			region string
			want   string
		}{{a, "eu-west-1", "i-0aaaaaaaaaaaaaaaa"}, {b, "eu-west-1", "i-0bbbbbbbbbbbbbbbb"}, {b, "us-east-1", "i-0cccccccccccccccc"}, {a, "us-east-1", ""}} {
			ids, err := instanceIDs(t, o.EC2As(c.region, c.creds))
			if err != nil || len(ids) > 1 || (c.want == "") != (len(ids) == 0) || (len(ids) == 1 && ids[0] != c.want) {
				t.Errorf("%s: %v, %v; want %q", c.region, ids, err, c.want)
			}
		}
		if _, err := instanceIDs(t, o.EC2As("ap-south-1", a)); !IsCode(err, "AuthFailure") {
			t.Errorf("a region that is not enabled: %v", err)
		}
	})
	t.Run("AccessDenied without the member role, for another role and outside the organisation", func(t *testing.T) {
		for _, c := range [][2]string{{"555566667777", "defenders-inventory"}, {"777788889999", "Admin"}, {"999988887777", "defenders-inventory"}, {"123412341234", "defenders-inventory"}} {
			if _, err := assume(t, o, c[0], c[1]); !IsCode(err, "AccessDenied") {
				t.Errorf("%v: %v", c, err)
			}
		}
	})
	t.Run("an expired session is refused", func(t *testing.T) {
		clock.Advance(time.Hour)
		if _, err := instanceIDs(t, o.EC2As("eu-west-1", a)); !IsCode(err, "ExpiredToken") {
			t.Errorf("after an hour: %v", err)
		}
		if _, err := instanceIDs(t, o.EC2As("eu-west-1", credentials.NewStaticCredentialsProvider("AKIANOBODY0000000000", "s", ""))); !IsCode(err, "AuthFailure") {
			t.Errorf("an unknown key: %v", err)
		}
	})
	t.Run("calls take their latency", func(t *testing.T) {
		t0 := clock.Now()
		a, _ = assume(t, o, "777788889999", "defenders-inventory")
		_, _ = instanceIDs(t, o.EC2As("eu-west-1", a))
		if d := clock.Now().Sub(t0); d != 150*time.Millisecond {
			t.Errorf("an AssumeRole and a DescribeInstances took %v", d)
		}
	})
	t.Run("STS and each account-region's EC2 are throttled by token buckets", func(t *testing.T) {
		o.STSRate, o.STSBurst, o.EC2Rate, o.EC2Burst = 1, 2, 20, 3
		o.STSLatency = 0
		var throttled int
		for range 4 {
			if _, err := assume(t, o, "777788889999", "defenders-inventory"); IsCode(err, "Throttling") {
				throttled++
			}
		}
		if throttled != 2 { // 2 in the bucket
			t.Errorf("%d of 4 AssumeRole throttled", throttled)
		}
		clock.Advance(time.Second)
		if a, err = assume(t, o, "777788889999", "defenders-inventory"); err != nil {
			t.Fatalf("a second later: %v", err)
		}
		o.EC2Latency = 0
		throttled = 0
		for range 5 {
			if _, err := instanceIDs(t, o.EC2As("eu-west-1", a)); IsCode(err, "RequestLimitExceeded") {
				throttled++
			}
		}
		if _, err := instanceIDs(t, o.EC2As("us-east-1", a)); err != nil {
			t.Errorf("another region has its own bucket: %v", err)
		}
		if throttled != 2 || o.Stats().EC2Throttled != 2 {
			t.Errorf("%d of 5 DescribeInstances throttled, stats %+v", throttled, o.Stats())
		}
	})
}

func TestCloudMembersOverTheWire(t *testing.T) {
	c := NewCloud(t)
	c.AddMember("777788889999", "defenders-inventory")
	c.AddMember("555566667777", "")
	c.PutInstance(Instance{ID: "i-0123456789abcdef0", State: "running", VPC: "vpc-0a", PrivateIP: "10.0.0.1"})
	c.PutInstance(Instance{ID: "i-0fedcba9876543210", State: "running", VPC: "vpc-0b", PrivateIP: "10.0.0.2", Account: "777788889999"})
	cl := newClients(c)
	ctx := context.Background()
	out, err := cl.sts.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::777788889999:role/defenders-inventory"),
		RoleSessionName: aws.String("defenders-detector")})
	if err != nil {
		t.Fatal(err)
	}
	key := aws.ToString(out.Credentials.AccessKeyId)
	if MemberAccount(key) != "777788889999" {
		t.Fatalf("member session key %s", key)
	}
	member := ec2.NewFromConfig(aws.Config{Region: Region, Credentials: credentials.NewStaticCredentialsProvider(key, "s", "t")},
		func(o *ec2.Options) { o.BaseEndpoint = aws.String(c.EC2.URL) })
	if ids, err := instanceIDs(t, member); err != nil || len(ids) != 1 || ids[0] != "i-0fedcba9876543210" {
		t.Errorf("the member sees %v, %v", ids, err)
	}
	if ids, err := instanceIDs(t, cl.ec2); err != nil || len(ids) != 1 || ids[0] != "i-0123456789abcdef0" {
		t.Errorf("the detector's account sees %v, %v", ids, err)
	}
	for _, arn := range []string{"arn:aws:iam::555566667777:role/defenders-inventory", "arn:aws:iam::777788889999:role/Admin", "arn:aws:iam::123412341234:role/defenders-inventory"} {
		if _, err := cl.sts.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(arn), RoleSessionName: aws.String("d")}); apiCode(err) != "AccessDenied" {
			t.Errorf("%s: %v, want AccessDenied", arn, err)
		}
	}
	// The Cloud's own roles are assumed as before (lockdown re-assumes its own role).
	own, err := cl.sts.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(RoleARN("/", "fn")), RoleSessionName: aws.String("fn")})
	if err != nil || aws.ToString(own.Credentials.AccessKeyId) != SessionAccessKeyID {
		t.Errorf("own role: %v, %v", own, err)
	}
}
