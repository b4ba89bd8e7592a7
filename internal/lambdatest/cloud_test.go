package lambdatest

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// clients are SDK clients pointed at a Cloud, with SDK retries off so that
// every answer is seen.
type clients struct {
	ec2 *ec2.Client
	iam *iam.Client
	sts *sts.Client
	cfn *cloudformation.Client
}

func newClients(c *Cloud) clients {
	cfg := aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider(FakeAccessKeyID, FakeSecretAccessKey, FakeSessionToken),
	}
	return clients{
		ec2: ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint, o.RetryMaxAttempts = aws.String(c.EC2.URL), 1 }),
		iam: iam.NewFromConfig(cfg, func(o *iam.Options) { o.BaseEndpoint, o.RetryMaxAttempts = aws.String(c.IAM.URL), 1 }),
		sts: sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint, o.RetryMaxAttempts = aws.String(c.STS.URL), 1 }),
		cfn: cloudformation.NewFromConfig(cfg, func(o *cloudformation.Options) {
			o.BaseEndpoint, o.RetryMaxAttempts = aws.String(c.CloudFormation.URL), 1
		}),
	}
}

// sampleCloud has one running web instance with a role under /defenders/,
// deployed by the nested stack Web of the root stack App.
func sampleCloud(t *testing.T) *Cloud {
	c := NewCloud(t)
	c.AddRole("web-role", "/defenders/")
	c.AddRole("Admin", "/")
	c.AddInstanceProfile("web-profile", "/", "web-role")
	c.PutInstance(Instance{ID: "i-0123456789abcdef0", State: "running", VPC: "vpc-0123456789abcdef0",
		PrivateIP: "10.0.1.10", PublicIP: "54.10.20.30", IPv6: []string{"2600:1f18::10"}, Profile: "web-profile"})
	c.PutInstance(Instance{ID: "i-0fedcba9876543210", State: "stopped", VPC: "vpc-0123456789abcdef0", PrivateIP: "10.0.1.11"})
	c.PutStack(Stack{Name: "App", Status: "UPDATE_COMPLETE", Resources: []StackResource{
		{LogicalID: "Web", PhysicalID: StackID("Web"), Type: "AWS::CloudFormation::Stack"}}})
	c.PutStack(Stack{Name: "Web", Status: "CREATE_COMPLETE", Root: "App", Resources: []StackResource{
		{LogicalID: "WebRole", PhysicalID: "web-role", Type: "AWS::IAM::Role"},
		{LogicalID: "WebProfile", PhysicalID: "web-profile", Type: "AWS::IAM::InstanceProfile"},
		{LogicalID: "WebInstance", PhysicalID: "i-0123456789abcdef0", Type: "AWS::EC2::Instance"}}})
	return c
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestCloudSpeaksTheWireProtocols(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := sampleCloud(t)
	cl := newClients(c)

	t.Run("DescribeInstances with filters answers what the SDK parses", func(t *testing.T) {
		out, err := cl.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []ec2types.Filter{
			{Name: aws.String("iam-instance-profile.arn"), Values: []string{InstanceProfileARN("/", "web-profile")}},
			{Name: aws.String("instance-state-name"), Values: []string{"running", "stopped"}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
			t.Fatalf("reservations %+v, want one instance", out.Reservations)
		}
		in := out.Reservations[0].Instances[0]
		if aws.ToString(in.InstanceId) != "i-0123456789abcdef0" || in.State.Name != ec2types.InstanceStateNameRunning ||
			aws.ToString(in.PublicIpAddress) != "54.10.20.30" || aws.ToString(in.VpcId) != "vpc-0123456789abcdef0" ||
			aws.ToString(in.Ipv6Address) != "2600:1f18::10" ||
			aws.ToString(in.IamInstanceProfile.Arn) != "arn:aws:iam::111122223333:instance-profile/web-profile" {
			t.Errorf("instance %+v", in)
		}
		if len(in.NetworkInterfaces) != 1 || aws.ToString(in.NetworkInterfaces[0].Association.PublicIp) != "54.10.20.30" ||
			len(in.NetworkInterfaces[0].Ipv6Addresses) != 1 {
			t.Errorf("network interfaces %+v", in.NetworkInterfaces)
		}
	})

	t.Run("DescribeInstances pages when asked to", func(t *testing.T) {
		c.SetPageSize(1)
		defer c.SetPageSize(0)
		var ids []string
		p := ec2.NewDescribeInstancesPaginator(cl.ec2, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range out.Reservations {
				for _, in := range r.Instances {
					ids = append(ids, aws.ToString(in.InstanceId))
				}
			}
		}
		if len(ids) != 2 {
			t.Errorf("ids %v, want both instances over two pages", ids)
		}
	})

	t.Run("GetRolePolicy returns the document the SDK can decode", func(t *testing.T) {
		doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["54.10.20.30/32"]}}}]}`
		if _, err := cl.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("web-role"),
			PolicyName: aws.String("defenders-lock"), PolicyDocument: aws.String(doc)}); err != nil {
			t.Fatal(err)
		}
		out, err := cl.iam.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String("web-role"), PolicyName: aws.String("defenders-lock")})
		if err != nil {
			t.Fatal(err)
		}
		got, err := url.PathUnescape(aws.ToString(out.PolicyDocument))
		if err != nil || got != doc {
			t.Errorf("document %q (%v), want %q percent-encoded", aws.ToString(out.PolicyDocument), err, doc)
		}
		names, err := cl.iam.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String("web-role")})
		if err != nil || len(names.PolicyNames) != 1 || names.PolicyNames[0] != "defenders-lock" {
			t.Errorf("policy names %v (%v)", names, err)
		}
	})

	t.Run("GetInstanceProfile, ListRoles and ListInstanceProfilesForRole answer paths and roles", func(t *testing.T) {
		p, err := cl.iam.GetInstanceProfile(ctx, &iam.GetInstanceProfileInput{InstanceProfileName: aws.String("web-profile")})
		if err != nil || len(p.InstanceProfile.Roles) != 1 || aws.ToString(p.InstanceProfile.Roles[0].Path) != "/defenders/" {
			t.Fatalf("profile %+v (%v)", p, err)
		}
		roles, err := cl.iam.ListRoles(ctx, &iam.ListRolesInput{PathPrefix: aws.String("/defenders/")})
		if err != nil || len(roles.Roles) != 1 || aws.ToString(roles.Roles[0].RoleName) != "web-role" {
			t.Fatalf("roles %+v (%v)", roles, err)
		}
		ps, err := cl.iam.ListInstanceProfilesForRole(ctx, &iam.ListInstanceProfilesForRoleInput{RoleName: aws.String("web-role")})
		if err != nil || len(ps.InstanceProfiles) != 1 {
			t.Fatalf("profiles %+v (%v)", ps, err)
		}
	})

	t.Run("DescribeStackResources by physical id and DescribeStacks answer what the SDK parses", func(t *testing.T) {
		res, err := cl.cfn.DescribeStackResources(ctx, &cloudformation.DescribeStackResourcesInput{PhysicalResourceId: aws.String("web-role")})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.StackResources) != 3 {
			t.Fatalf("resources %+v, want the three of stack Web", res.StackResources)
		}
		r := res.StackResources[0]
		if aws.ToString(r.StackName) != "Web" || aws.ToString(r.StackId) != StackID("Web") || aws.ToString(r.PhysicalResourceId) != "web-role" ||
			aws.ToString(r.ResourceType) != "AWS::IAM::Role" || r.ResourceStatus != cfntypes.ResourceStatusCreateComplete {
			t.Errorf("resource %+v", r)
		}
		stacks, err := cl.cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: r.StackId})
		if err != nil {
			t.Fatal(err)
		}
		if len(stacks.Stacks) != 1 {
			t.Fatalf("stacks %+v", stacks.Stacks)
		}
		st := stacks.Stacks[0]
		if aws.ToString(st.StackName) != "Web" || st.StackStatus != cfntypes.StackStatusCreateComplete ||
			aws.ToString(st.RootId) != StackID("App") || aws.ToString(st.ParentId) != StackID("App") {
			t.Errorf("stack %+v", st)
		}
		c.SetStackStatus("App", "DELETE_IN_PROGRESS")
		defer c.SetStackStatus("App", "UPDATE_COMPLETE")
		root, err := cl.cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: st.RootId})
		if err != nil || len(root.Stacks) != 1 || root.Stacks[0].StackStatus != cfntypes.StackStatusDeleteInProgress || root.Stacks[0].RootId != nil {
			t.Errorf("root %+v (%v)", root, err)
		}
	})

	t.Run("a deleted stack is found by its id only", func(t *testing.T) {
		c.PutStack(Stack{Name: "Gone", Status: "DELETE_COMPLETE"})
		if _, err := cl.cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String("Gone")}); apiCode(err) != "ValidationError" {
			t.Errorf("by name: %v, want ValidationError", err)
		}
		out, err := cl.cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(StackID("Gone"))})
		if err != nil || len(out.Stacks) != 1 || out.Stacks[0].StackStatus != cfntypes.StackStatusDeleteComplete {
			t.Errorf("by id: %+v (%v)", out, err)
		}
	})

	t.Run("DeleteRole answers DeleteConflict until the policies and the profile are gone", func(t *testing.T) {
		c.AddRole("doomed", "/defenders/")
		c.AddInstanceProfile("doomed-profile", "/", "doomed")
		c.SetRolePolicy("doomed", "defenders-lock", `{"Version":"2012-10-17","Statement":[]}`)
		code := func(err error) string {
			var ae *APIError
			if errors.As(err, &ae) {
				return ae.Code
			}
			return ""
		}
		err := c.DeleteRole("doomed")
		if code(err) != "DeleteConflict" || !strings.Contains(err.Error(), "must delete policies first") {
			t.Fatalf("with an inline policy: %v", err)
		}
		c.DeleteRolePolicy("doomed", "defenders-lock")
		if err := c.DeleteRole("doomed"); code(err) != "DeleteConflict" {
			t.Fatalf("in an instance profile: %v", err)
		}
		c.DeleteInstanceProfile("doomed-profile")
		if err := c.DeleteRole("doomed"); err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteRole("doomed"); code(err) != "NoSuchEntity" {
			t.Errorf("twice: %v", err)
		}
	})

	t.Run("AssumeRole hands out session credentials and records the session policy", func(t *testing.T) {
		out, err := cl.sts.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(FunctionRoleARN),
			RoleSessionName: aws.String("s"), Policy: aws.String(`{"Version":"2012-10-17","Statement":[]}`)})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.Credentials.AccessKeyId) != SessionAccessKeyID || out.Credentials.Expiration.Before(time.Now().Add(50*time.Minute)) {
			t.Errorf("credentials %+v", out.Credentials)
		}
		calls := c.STS.Calls("AssumeRole")
		if len(calls) != 1 || calls[0].Form.Get("Policy") == "" || calls[0].AccessKeyID != FakeAccessKeyID {
			t.Errorf("calls %+v", calls)
		}
	})
}

func TestCloudErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := sampleCloud(t)
	c.LimitWrites("/defenders/")
	cl := newClients(c)
	describe := func() error {
		_, err := cl.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		return err
	}
	getRole := func() error {
		_, err := cl.iam.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("web-role")})
		return err
	}
	stackOf := func() error {
		_, err := cl.cfn.DescribeStackResources(ctx, &cloudformation.DescribeStackResourcesInput{PhysicalResourceId: aws.String("web-role")})
		return err
	}
	identity := func() error {
		_, err := cl.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		return err
	}
	tests := []struct {
		name      string
		inject    func()
		call      func() error
		code      string
		retryable bool
	}{
		{"an EC2 throttle is RequestLimitExceeded and retryable",
			func() { c.EC2.InjectFaults("DescribeInstances", c.EC2.Throttle()) }, describe, "RequestLimitExceeded", true},
		{"an EC2 server error is InternalError and retryable",
			func() { c.EC2.InjectFaults("*", c.EC2.ServerError()) }, describe, "InternalError", true},
		{"an IAM throttle is Throttling and retryable",
			func() { c.IAM.InjectFaults("GetRole", c.IAM.Throttle()) }, getRole, "Throttling", true},
		{"an IAM server error is ServiceFailure and retryable",
			func() { c.IAM.InjectFaults("GetRole", c.IAM.ServerError()) }, getRole, "ServiceFailure", true},
		{"an STS throttle is Throttling and retryable",
			func() { c.STS.InjectFaults("GetCallerIdentity", c.STS.Throttle()) }, identity, "Throttling", true},
		{"a CloudFormation throttle is Throttling and retryable",
			func() { c.CloudFormation.InjectFaults("DescribeStackResources", c.CloudFormation.Throttle()) }, stackOf, "Throttling", true},
		{"a CloudFormation server error is InternalFailure and retryable",
			func() { c.CloudFormation.InjectFaults("*", c.CloudFormation.ServerError()) }, stackOf, "InternalFailure", true},
		{"a physical id that no stack owns is ValidationError and not retryable",
			func() {}, func() error {
				_, err := cl.cfn.DescribeStackResources(ctx, &cloudformation.DescribeStackResourcesInput{PhysicalResourceId: aws.String("Admin")})
				if err != nil && !strings.Contains(err.Error(), "Stack for Admin does not exist") {
					t.Errorf("message of %v", err)
				}
				return err
			}, "ValidationError", false},
		{"an unknown stack is ValidationError",
			func() {}, func() error {
				_, err := cl.cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String("nope")})
				return err
			}, "ValidationError", false},
		{"a missing role is NoSuchEntity and not retryable",
			func() {}, func() error {
				_, err := cl.iam.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("nobody")})
				return err
			}, "NoSuchEntity", false},
		{"a missing instance is InvalidInstanceID.NotFound",
			func() {}, func() error {
				_, err := cl.ec2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-00000000000000000"}})
				return err
			}, "InvalidInstanceID.NotFound", false},
		{"a write outside the allowed paths is AccessDenied",
			func() {}, func() error {
				_, err := cl.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("Admin"),
					PolicyName: aws.String("x"), PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[]}`)})
				return err
			}, "AccessDenied", false},
		{"a policy over the role quota is LimitExceeded",
			func() {}, func() error {
				big := `{"Version":"2012-10-17","Statement":[{"Sid":"` + strings.Repeat("a", 11000) + `","Effect":"Deny","Action":"*","Resource":"*"}]}`
				_, err := cl.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("web-role"),
					PolicyName: aws.String("big"), PolicyDocument: aws.String(big)})
				return err
			}, "LimitExceeded", false},
		{"an unknown action is InvalidAction",
			func() {}, func() error {
				_, err := cl.iam.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("x"), AssumeRolePolicyDocument: aws.String("{}")})
				return err
			}, "InvalidAction", false},
	}
	classify := retry.IsErrorRetryables(retry.DefaultRetryables)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.inject()
			err := tc.call()
			if got := apiCode(err); got != tc.code {
				t.Fatalf("error %v has code %q, want %q", err, got, tc.code)
			}
			if got := classify.IsErrorRetryable(err) == aws.TrueTernary; got != tc.retryable {
				t.Errorf("retryable = %v, want %v (%v)", got, tc.retryable, err)
			}
			if err := tc.call(); apiCode(err) == tc.code && tc.retryable {
				t.Errorf("the fault was answered twice: %v", err)
			}
		})
	}

	t.Run("faults are answered in order, then the handler answers", func(t *testing.T) {
		c.IAM.ResetCalls()
		c.IAM.InjectFaults("GetRole", append(Repeat(2, c.IAM.Throttle()), c.IAM.ServerError())...)
		var codes []string
		for range 4 {
			codes = append(codes, apiCode(getRole()))
		}
		want := []string{"Throttling", "Throttling", "ServiceFailure", ""}
		for i := range want {
			if codes[i] != want[i] {
				t.Fatalf("codes %q, want %q", codes, want)
			}
		}
		if n := c.IAM.Count("GetRole"); n != 4 {
			t.Errorf("GetRole count %d, want 4", n)
		}
	})
}
