package detector_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/defenders-cdk/defenders/constructs/detector"
	"github.com/defenders-cdk/defenders/constructs/lock"
	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/iameval"
	"github.com/defenders-cdk/defenders/internal/lockdown"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

func synth(t *testing.T, props *detector.Props) map[string]any {
	t.Helper()
	code := t.TempDir()
	os.WriteFile(filepath.Join(code, "bootstrap"), []byte("stand-in"), 0o755)
	app := cdktest.NewApp(t, nil)
	var asm *cdktest.Assembly
	cdktest.NoPanic(t, func() {
		st := awscdk.NewStack(app, jsii.String("det"), &awscdk.StackProps{Env: &awscdk.Environment{
			Account: jsii.String("111122223333"), Region: jsii.String("us-east-1")}})
		p := *props
		p.Code = awslambda.Code_FromAsset(jsii.String(code), nil)
		if _, err := detector.New(st, "detector", &p); err != nil {
			t.Fatal(err)
		}
		asm = cdktest.Synth(t, app)
	})
	return asm.Templates["det"]
}

func one(t *testing.T, tpl map[string]any, typ string) (string, map[string]any) {
	t.Helper()
	rs := cdktest.Resources(tpl, typ)
	if len(rs) != 1 {
		t.Fatalf("want one %s, got %v", typ, cdktest.Keys(rs))
	}
	for id, r := range rs {
		return id, cdktest.Props(r)
	}
	return "", nil
}

func TestDetectorWiring(t *testing.T) {
	tpl := synth(t, &detector.Props{AlertEmail: "secops@example.com", TrailLogGroupName: "aws-cloudtrail-logs"})
	_, fn := one(t, tpl, "AWS::Lambda::Function")
	t.Run("the function is arm64 provided.al2023 with no reserved concurrency (deployable in a new account) and a DLQ", func(t *testing.T) {
		if fn["Runtime"] != "provided.al2023" || fn["Handler"] != "bootstrap" {
			t.Errorf("runtime %v handler %v", fn["Runtime"], fn["Handler"])
		}
		if a, _ := json.Marshal(fn["Architectures"]); string(a) != `["arm64"]` {
			t.Errorf("architectures %s", a)
		}
		if v, ok := fn["ReservedConcurrentExecutions"]; ok {
			t.Errorf("reserved concurrency %v by default: a new account (quota 10) refuses any reservation", v)
		}
		if fn["DeadLetterConfig"] == nil {
			t.Errorf("no dead-letter config")
		}
	})
	t.Run("the EventBridge rule also receives read-only management events", func(t *testing.T) {
		_, rule := one(t, tpl, "AWS::Events::Rule")
		if rule["State"] != "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS" {
			t.Errorf("rule state %v: ENABLED delivers write events only", rule["State"])
		}
	})
	t.Run("the EventBridge rule only passes instance-role calls not made by AWS services", func(t *testing.T) {
		_, rule := one(t, tpl, "AWS::Events::Rule")
		p, _ := json.Marshal(rule["EventPattern"])
		for _, want := range []string{`"detail-type":["AWS API Call via CloudTrail"]`, `{"wildcard":"*:i-*"}`, `"invokedBy":[{"exists":false}]`, `"type":["AssumedRole"]`} {
			if !strings.Contains(string(p), want) {
				t.Errorf("pattern %s lacks %s", p, want)
			}
		}
	})
	t.Run("the log subscription filters as early as the source allows", func(t *testing.T) {
		_, sub := one(t, tpl, "AWS::Logs::SubscriptionFilter")
		if sub["FilterPattern"] != detector.SubscriptionFilterPattern || sub["LogGroupName"] != "aws-cloudtrail-logs" {
			t.Errorf("subscription %v", sub)
		}
	})
	t.Run("alerts are encrypted, TLS-only and e-mailed", func(t *testing.T) {
		_, topic := one(t, tpl, "AWS::SNS::Topic")
		if topic["KmsMasterKeyId"] == nil {
			t.Errorf("topic not encrypted")
		}
		_, sub := one(t, tpl, "AWS::SNS::Subscription")
		if sub["Protocol"] != "email" || sub["Endpoint"] != "secops@example.com" {
			t.Errorf("subscription %v", sub)
		}
		_, key := one(t, tpl, "AWS::KMS::Key")
		if key["EnableKeyRotation"] != true {
			t.Errorf("key rotation off")
		}
	})
	t.Run("errors and dead letters raise alarms", func(t *testing.T) {
		if n := len(cdktest.Resources(tpl, "AWS::CloudWatch::Alarm")); n != 2 {
			t.Errorf("%d alarms, want 2", n)
		}
	})
}

// roleDocuments returns the policy documents of tpl with the detector's resources resolved to
// example ARNs (us-east-1, account 111122223333), for the IAM evaluator.
func roleDocuments(t *testing.T, tpl map[string]any) []iameval.Policy {
	t.Helper()
	values := map[string]any{`{"Ref":"AWS::Partition"}`: "aws"}
	topicID, _ := one(t, tpl, "AWS::SNS::Topic")
	values[`{"Ref":"`+topicID+`"}`] = "arn:aws:sns:us-east-1:111122223333:alerts"
	for id := range cdktest.Resources(tpl, "AWS::SQS::Queue") {
		values[`{"Fn::GetAtt":["`+id+`","Arn"]}`] = "arn:aws:sqs:us-east-1:111122223333:dlq"
	}
	for id := range cdktest.Resources(tpl, "AWS::Logs::LogGroup") {
		values[`{"Fn::GetAtt":["`+id+`","Arn"]}`] = "arn:aws:logs:us-east-1:111122223333:log-group:det:*"
	}
	for id := range cdktest.Resources(tpl, "AWS::KMS::Key") {
		values[`{"Fn::GetAtt":["`+id+`","Arn"]}`] = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	}
	return cdktest.PolicyDocuments(t, tpl, values)
}

// TestDetectorRoleIsLeastPrivilege evaluates the synthesized role with the IAM evaluator.
func TestDetectorRoleIsLeastPrivilege(t *testing.T) {
	tpl := synth(t, &detector.Props{})
	docs := roleDocuments(t, tpl)
	cases := []cdktest.Decision{
		{Action: "ec2:DescribeInstances", Resource: "*", Want: iameval.Allowed},
		{Action: "ec2:DescribeNatGateways", Resource: "*", Want: iameval.Allowed},
		{Action: "ec2:DescribeRegions", Resource: "*", Want: iameval.Allowed},
		{Action: "sns:Publish", Resource: "arn:aws:sns:us-east-1:111122223333:alerts", Want: iameval.Allowed},
		{Action: "sqs:SendMessage", Resource: "arn:aws:sqs:us-east-1:111122223333:dlq", Want: iameval.Allowed},
		{Action: "sns:Publish", Resource: "arn:aws:sns:us-east-1:111122223333:someone-elses-topic", Want: iameval.ImplicitlyDenied},
		{Action: "sqs:SendMessage", Resource: "arn:aws:sqs:us-east-1:111122223333:other", Want: iameval.ImplicitlyDenied},
		{Action: "ec2:TerminateInstances", Resource: "arn:aws:ec2:us-east-1:111122223333:instance/i-0123456789abcdef0", Want: iameval.ImplicitlyDenied},
		{Action: "iam:PutRolePolicy", Resource: "arn:aws:iam::111122223333:role/anything", Want: iameval.ImplicitlyDenied},
		{Action: "cloudtrail:StopLogging", Resource: "arn:aws:cloudtrail:us-east-1:111122223333:trail/main", Want: iameval.ImplicitlyDenied},
		{Action: "sns:DeleteTopic", Resource: "arn:aws:sns:us-east-1:111122223333:alerts", Want: iameval.ImplicitlyDenied},
	}
	cdktest.ExpectDecisions(t, "arn:aws:sts::111122223333:assumed-role/detector/fn", docs, cases)
}

func TestRegionsReachTheFunction(t *testing.T) {
	_, fn := one(t, synth(t, &detector.Props{Regions: []string{"eu-west-1", "us-east-1"}}), "AWS::Lambda::Function")
	b, _ := json.Marshal(fn["Environment"])
	if !strings.Contains(string(b), `"`+detector.EnvRegions+`":"eu-west-1,us-east-1"`) {
		t.Errorf("environment %s", b)
	}
	_, fn = one(t, synth(t, &detector.Props{}), "AWS::Lambda::Function")
	if b, _ := json.Marshal(fn["Environment"]); strings.Contains(string(b), detector.EnvRegions) {
		t.Errorf("environment %s sets %s without Regions", b, detector.EnvRegions)
	}
}

func TestTrustReachesTheFunctionOnlyWhenGiven(t *testing.T) {
	env := func(p *detector.Props) string {
		_, fn := one(t, synth(t, p), "AWS::Lambda::Function")
		b, _ := json.Marshal(fn["Environment"])
		return string(b)
	}
	got := env(&detector.Props{Trust: lock.Trust{EgressPrefixes: []string{"203.0.113.0/25"}, SharedVPCEndpoints: []string{"vpce-0badc0ffee0123456", "vpce-01234567"}}})
	for _, want := range []string{`"` + detector.EnvTrustedEgressPrefixes + `":"203.0.113.0/25"`, `"` + detector.EnvSharedVPCEndpoints + `":"vpce-01234567,vpce-0badc0ffee0123456"`} {
		if !strings.Contains(got, want) {
			t.Errorf("environment %s lacks %s", got, want)
		}
	}
	if got := env(&detector.Props{}); strings.Contains(got, detector.EnvTrustedEgressPrefixes) || strings.Contains(got, detector.EnvSharedVPCEndpoints) {
		t.Errorf("environment %s sets the trust without Props.Trust", got)
	}
}

func TestReservedConcurrencyIsSetOnlyWhenAskedFor(t *testing.T) {
	tpl := synth(t, &detector.Props{ReservedConcurrency: 5})
	if _, fn := one(t, tpl, "AWS::Lambda::Function"); fn["ReservedConcurrentExecutions"] != 5.0 {
		t.Errorf("reserved concurrency %v, want 5", fn["ReservedConcurrentExecutions"])
	}
}

// TestAlarmsReachTheEncryptedTopic evaluates the topic policy and the key policy, as resource
// policies, with the IAM evaluator: CloudWatch alarms of this account can publish (over TLS);
// another account's alarms, and anything over plain HTTP, cannot.
func TestAlarmsReachTheEncryptedTopic(t *testing.T) {
	tpl := synth(t, &detector.Props{})
	const (
		account  = "111122223333"
		topicArn = "arn:aws:sns:us-east-1:111122223333:alerts"
		keyArn   = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	)
	topicID, _ := one(t, tpl, "AWS::SNS::Topic")
	keyID, key := one(t, tpl, "AWS::KMS::Key")
	values := map[string]any{`{"Ref":"AWS::Partition"}`: "aws", `{"Ref":"` + topicID + `"}`: topicArn,
		`{"Fn::GetAtt":["` + keyID + `","Arn"]}`: keyArn}
	_, tp := one(t, tpl, "AWS::SNS::TopicPolicy")
	policy := func(name string, doc any) *iameval.Policy {
		b, err := json.Marshal(cdktest.Substitute(t, doc, values))
		if err != nil {
			t.Fatal(err)
		}
		return &iameval.Policy{Name: name, Document: b}
	}
	topicPolicy, keyPolicy := policy("topic policy", tp["PolicyDocument"]), policy("key policy", key["KeyPolicy"])
	alarm := func(acct string) map[string]any {
		return map[string]any{"aws:SourceAccount": acct, "aws:SourceArn": "arn:aws:cloudwatch:us-east-1:" + acct + ":alarm:detector-Errors",
			"aws:SecureTransport": "true"}
	}
	plain := alarm(account)
	plain["aws:SecureTransport"] = "false"
	otherRegion := alarm(account)
	otherRegion["aws:SourceArn"] = "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:x"
	cases := []struct {
		name, action, resource string
		pol                    *iameval.Policy
		ctx                    map[string]any
		want                   string
	}{
		{"an alarm of this account can publish", "sns:Publish", topicArn, topicPolicy, alarm(account), iameval.Allowed},
		{"an alarm of another account cannot publish", "sns:Publish", topicArn, topicPolicy, alarm("999988887777"), iameval.ImplicitlyDenied},
		{"an alarm of another region cannot publish", "sns:Publish", topicArn, topicPolicy, otherRegion, iameval.ImplicitlyDenied},
		{"nothing is published over plain HTTP", "sns:Publish", topicArn, topicPolicy, plain, iameval.ExplicitlyDenied},
		{"CloudWatch may not change the topic", "sns:SetTopicAttributes", topicArn, topicPolicy, alarm(account), iameval.ImplicitlyDenied},
		{"an alarm of this account can encrypt with the key", "kms:GenerateDataKey", keyArn, keyPolicy, alarm(account), iameval.Allowed},
		{"an alarm of this account can decrypt with the key", "kms:Decrypt", keyArn, keyPolicy, alarm(account), iameval.Allowed},
		{"an alarm of another account cannot use the key", "kms:GenerateDataKey", keyArn, keyPolicy, alarm("999988887777"), iameval.ImplicitlyDenied},
		{"CloudWatch cannot manage the key", "kms:ScheduleKeyDeletion", keyArn, keyPolicy, alarm(account), iameval.ImplicitlyDenied},
	}
	reqs := make([]iameval.Request, len(cases))
	for i, c := range cases {
		reqs[i] = iameval.Request{Name: c.name, Principal: "cloudwatch.amazonaws.com", Action: c.action, Resource: c.resource,
			Context: c.ctx, ResourcePolicy: c.pol, ResourceAccount: account}
	}
	res, err := iameval.Evaluate(t.Context(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if res[i].Decision != c.want {
				t.Errorf("%s %s: %s, want %s\n%s", c.action, c.resource, res[i].Decision, c.want, res[i].Explain)
			}
		})
	}
}

func TestDetectorPropsAreValidated(t *testing.T) {
	for _, c := range []struct {
		p    detector.Props
		want string
	}{
		{detector.Props{AlertEmail: "not-an-address"}, "AlertEmail"},
		{detector.Props{AlertEmail: "a@b.com, evil@x.com"}, "AlertEmail"},
		{detector.Props{TrailLogGroupName: "bad name*"}, "TrailLogGroupName"},
		{detector.Props{ReservedConcurrency: -1}, "ReservedConcurrency"},
		{detector.Props{Regions: []string{"eu-west-1", "EU-WEST-1"}}, "Regions[1]"},
		{detector.Props{Regions: []string{"eu-west-1", "eu-west-1"}}, "twice"},
		{detector.Props{Regions: []string{"eu-west-1,us-east-1"}}, "Regions[0]"},
		{detector.Props{Trust: lock.Trust{EgressPrefixes: []string{"10.0.0.0/8"}}}, "Props.Trust"},
		{detector.Props{Trust: lock.Trust{EgressPrefixes: []string{"0.0.0.0/0"}}}, "Props.Trust"},
		{detector.Props{Trust: lock.Trust{SharedVPCEndpoints: []string{"vpc-0123456789abcdef0"}}}, "Props.Trust"},
	} {
		if err := c.p.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want one naming %s", c.p, err, c.want)
		}
	}
}

// TestAFailedLambdaBuildIsAnErrorNamingTheConstruct: without a Go toolchain the detector cannot
// build its Lambda; New returns an error that names the construct, and nothing panics.
func TestAFailedLambdaBuildIsAnErrorNamingTheConstruct(t *testing.T) {
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())}) // bundling on
	var err error
	cdktest.NoPanic(t, func() {
		st := awscdk.NewStack(app, jsii.String("sec"), nil)
		t.Setenv("PATH", t.TempDir()) // no go command (the jsii kernel is already running)
		t.Setenv("DEFENDERS_BUILD_CACHE", t.TempDir())
		_, err = detector.New(st, "Detector", &detector.Props{})
	})
	if err == nil || !strings.Contains(err.Error(), "detector sec/Detector: building its Lambda") {
		t.Fatalf("err = %v, want one naming the construct sec/Detector", err)
	}
}

// TestTheLambdaReadsTheEnvironmentTheConstructWrites feeds the synthesized Environment, with its
// tokens replaced by realistic values, to the detector Lambda's own settings loader (and to
// lockdown's): a variable renamed on one side only fails here.
func TestTheLambdaReadsTheEnvironmentTheConstructWrites(t *testing.T) {
	tpl := synth(t, &detector.Props{Regions: []string{"eu-west-1", "us-east-1"}, Lockdown: true, DedupeWindow: 2 * time.Hour,
		Trust: lock.Trust{EgressPrefixes: []string{"203.0.113.0/25", "198.51.100.7"}, SharedVPCEndpoints: []string{"vpce-0badc0ffee0123456"}}})
	topicID, _ := one(t, tpl, "AWS::SNS::Topic")
	queueID, _ := one(t, tpl, "AWS::SQS::Queue")
	roleID, _ := one(t, tpl, "AWS::IAM::Role")
	const (
		topicArn = "arn:aws:sns:us-east-1:111122223333:alerts"
		queueURL = "https://sqs.us-east-1.amazonaws.com/111122223333/dlq"
		roleArn  = "arn:aws:iam::111122223333:role/defenders-lockdown/c8detector/det-Role"
	)
	_, fn := one(t, tpl, "AWS::Lambda::Function")
	vars := cdktest.Substitute(t, fn["Environment"].(map[string]any)["Variables"], map[string]any{
		`{"Ref":"` + topicID + `"}`: topicArn, `{"Ref":"` + queueID + `"}`: queueURL,
		`{"Fn::GetAtt":["` + roleID + `","Arn"]}`: roleArn,
	}).(map[string]any)
	getenv := func(k string) string { s, _ := vars[k].(string); return s }
	for k, v := range vars {
		if _, ok := v.(string); !ok {
			t.Fatalf("%s = %v is still a token", k, v)
		}
	}
	s, err := detect.LoadSettings(getenv)
	if err != nil {
		t.Fatalf("the Lambda refuses the construct's environment: %v", err)
	}
	if s.TopicARN != topicArn || s.DLQURL != queueURL || s.SelfRoleARN != roleArn || s.DedupeWindow != 2*time.Hour ||
		s.InventoryTTL != 10*time.Minute || !s.Lockdown || strings.Join(s.Regions, ",") != "eu-west-1,us-east-1" {
		t.Errorf("settings %+v do not carry the construct's values", s)
	}
	if fmt.Sprint(s.TrustedEgressPrefixes) != "[198.51.100.7/32 203.0.113.0/25]" ||
		strings.Join(s.SharedVPCEndpoints, ",") != "vpce-0badc0ffee0123456" {
		t.Errorf("settings trust %v %v, want the construct's Trust", s.TrustedEgressPrefixes, s.SharedVPCEndpoints)
	}
	if p := s.Policy(); len(p.TrustedSourcePrefixes) != 2 || len(p.TrustedVPCEndpoints) != 1 {
		t.Errorf("the detector's policy %+v does not carry the trust", p)
	}
	o, err := lockdown.OptionsFromEnv(getenv)
	if err != nil || o.RoleARN != roleArn {
		t.Errorf("lockdown options %+v, %v: want the role ARN", o, err)
	}
}
