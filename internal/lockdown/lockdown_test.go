package lockdown

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

const (
	account  = "111122223333"
	roleARN  = "arn:aws:iam::" + account + ":role/service/fn-role"
	lambdaIP = "203.0.113.10"
	vpcA     = "vpc-0123456789abcdef0"
	vpcB     = "vpc-0fedcba9876543210"
)

var lambdaAddr = netip.MustParsePrefix(lambdaIP + "/32")

// parsedPolicy is a session policy decoded for inspection.
type parsedPolicy struct {
	Version   string
	Statement []struct {
		Sid       string
		Effect    string
		Action    any
		Resource  string
		Condition map[string]map[string]any
	}
}

func parsePolicy(t *testing.T, b []byte) parsedPolicy {
	t.Helper()
	var p parsedPolicy
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("session policy is not JSON: %v\n%s", err, b)
	}
	return p
}

func (p parsedPolicy) sids() []string {
	var out []string
	for _, s := range p.Statement {
		out = append(out, s.Sid)
	}
	return out
}

func TestSessionPolicy(t *testing.T) {
	tests := []struct {
		name     string
		addr     netip.Prefix
		vpcs     []string
		wantSids []string
		check    func(t *testing.T, p parsedPolicy)
	}{
		{name: "without VPCs the session may call only from its own address",
			addr:     lambdaAddr,
			wantSids: []string{lockpolicy.SidAllowWhatTheRoleAllows, lockpolicy.SidDenyPublicCallsFromOtherAddresses, lockpolicy.SidDenyEndpointCallsFromAnyVpc, lockpolicy.SidDenySheddingTheLock},
			check: func(t *testing.T, p parsedPolicy) {
				deny := p.Statement[1]
				if deny.Effect != "Deny" || deny.Action != "*" || deny.Resource != "*" {
					t.Errorf("address deny = %+v", deny)
				}
				if got := deny.Condition["NotIpAddress"]["aws:SourceIp"]; got != lambdaIP+"/32" {
					t.Errorf("NotIpAddress aws:SourceIp = %v, want %s/32", got, lambdaIP)
				}
				if got := deny.Condition["Null"]["aws:SourceIp"]; got != "false" {
					t.Errorf("Null aws:SourceIp = %v", got)
				}
				if got := deny.Condition["BoolIfExists"]["aws:ViaAWSService"]; got != "false" {
					t.Errorf("BoolIfExists aws:ViaAWSService = %v", got)
				}
			}},
		{name: "with VPCs the session may also call through their endpoints",
			addr: lambdaAddr, vpcs: []string{vpcB, vpcA, vpcA},
			wantSids: []string{lockpolicy.SidAllowWhatTheRoleAllows, lockpolicy.SidDenyPublicCallsFromOtherAddresses, lockpolicy.SidDenyEndpointCallsFromOtherVpcs, lockpolicy.SidDenySheddingTheLock},
			check: func(t *testing.T, p parsedPolicy) {
				got := p.Statement[2].Condition["StringNotEquals"]["aws:SourceVpc"]
				if list, ok := got.([]any); !ok || len(list) != 2 || list[0] != vpcA || list[1] != vpcB {
					t.Errorf("aws:SourceVpc = %v, want [%s %s]", got, vpcA, vpcB)
				}
			}},
		{name: "the session can never mint credentials without the policy",
			addr:     netip.MustParsePrefix("2001:db8::10/128"),
			wantSids: []string{lockpolicy.SidAllowWhatTheRoleAllows, lockpolicy.SidDenyPublicCallsFromOtherAddresses, lockpolicy.SidDenyEndpointCallsFromAnyVpc, lockpolicy.SidDenySheddingTheLock},
			check: func(t *testing.T, p parsedPolicy) {
				shed := p.Statement[3]
				if shed.Effect != "Deny" || shed.Condition != nil {
					t.Errorf("shedding deny must be unconditional: %+v", shed)
				}
				var actions []string
				for _, a := range shed.Action.([]any) {
					actions = append(actions, a.(string))
				}
				for _, want := range []string{"sts:AssumeRole", "sts:AssumeRoleWithWebIdentity", "sts:GetSessionToken", "sts:GetFederationToken"} {
					if !slices.Contains(actions, want) {
						t.Errorf("%s is not denied: %q", want, actions)
					}
				}
				allow := p.Statement[0]
				if allow.Effect != "Allow" || allow.Action != "*" || allow.Resource != "*" || allow.Condition != nil {
					t.Errorf("allow = %+v", allow)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := SessionPolicy(tt.addr, tt.vpcs)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > lockpolicy.MaxSessionPolicySize {
				t.Errorf("policy is %d characters", len(b))
			}
			p := parsePolicy(t, b)
			if p.Version != "2012-10-17" || !slices.Equal(p.sids(), tt.wantSids) {
				t.Fatalf("version %q sids %q, want %q", p.Version, p.sids(), tt.wantSids)
			}
			tt.check(t, p)
		})
	}
}

func TestSessionPolicyRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		addr netip.Prefix
		vpcs []string
	}{
		{name: "no address is rejected", addr: netip.Prefix{}},
		{name: "a private address is rejected", addr: netip.MustParsePrefix("10.0.0.5/32")},
		{name: "the whole internet is rejected", addr: netip.MustParsePrefix("0.0.0.0/0")},
		{name: "a malformed VPC id is rejected", addr: lambdaAddr, vpcs: []string{"vpc-XYZ"}},
		{name: "too many VPCs for STS are rejected", addr: lambdaAddr, vpcs: manyVPCs(100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := SessionPolicy(tt.addr, tt.vpcs); err == nil {
				t.Errorf("SessionPolicy succeeded: %s", b)
			} else if !strings.HasPrefix(err.Error(), "lockdown:") {
				t.Errorf("error %q lacks context", err)
			}
		})
	}
}

func manyVPCs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("vpc-%017x", i)
	}
	return out
}

// fakeSTS records AssumeRole calls and answers like STS.
type fakeSTS struct {
	mu        sync.Mutex
	now       func() time.Time
	assumes   []*sts.AssumeRoleInput
	identity  string
	assumeErr []error
	n         int
}

func (f *fakeSTS) AssumeRole(_ context.Context, in *sts.AssumeRoleInput, _ ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.assumes = append(f.assumes, in)
	if len(f.assumeErr) > 0 {
		err := f.assumeErr[0]
		f.assumeErr = f.assumeErr[1:]
		if err != nil {
			return nil, err
		}
	}
	f.n++
	exp := f.now().Add(time.Duration(aws.ToInt32(in.DurationSeconds)) * time.Second)
	return &sts.AssumeRoleOutput{Credentials: &ststypes.Credentials{
		AccessKeyId: aws.String(fmt.Sprint("ASIAFAKE", f.n)), SecretAccessKey: aws.String("secret"),
		SessionToken: aws.String(fmt.Sprint("token", f.n)), Expiration: &exp,
	}}, nil
}

func (f *fakeSTS) GetCallerIdentity(context.Context, *sts.GetCallerIdentityInput, ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error) {
	if f.identity == "" {
		return nil, &smithy.GenericAPIError{Code: "AccessDenied", Message: "no"}
	}
	return &sts.GetCallerIdentityOutput{Arn: aws.String(f.identity)}, nil
}

// clock is an injectable clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestProvider(t *testing.T, o Options) (*Provider, *fakeSTS, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	f := &fakeSTS{now: clk.now}
	o.Now = clk.now
	if o.FindAddress == nil {
		o.FindAddress = func(context.Context) (netip.Prefix, error) { return lambdaAddr, nil }
	}
	p, err := New(f, o)
	if err != nil {
		t.Fatal(err)
	}
	return p, f, clk
}

func TestRetrieveLocksWithTheSessionPolicy(t *testing.T) {
	p, f, clk := newTestProvider(t, Options{RoleARN: roleARN, VPCs: []string{vpcA}, Duration: 30 * time.Minute})
	creds, err := p.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.assumes) != 1 {
		t.Fatalf("%d AssumeRole calls", len(f.assumes))
	}
	in := f.assumes[0]
	want, _ := SessionPolicy(lambdaAddr, []string{vpcA})
	if aws.ToString(in.Policy) != string(want) || aws.ToString(in.RoleArn) != roleARN ||
		aws.ToInt32(in.DurationSeconds) != 1800 || aws.ToString(in.RoleSessionName) != DefaultSessionName {
		t.Errorf("AssumeRole input = role %s session %s duration %d policy %s",
			aws.ToString(in.RoleArn), aws.ToString(in.RoleSessionName), aws.ToInt32(in.DurationSeconds), aws.ToString(in.Policy))
	}
	if !creds.CanExpire || !creds.Expires.Equal(clk.t.Add(30*time.Minute)) || creds.Source != CredentialsSource {
		t.Errorf("credentials = %+v", creds)
	}
	if addr, _ := p.Address(); addr != lambdaAddr {
		t.Errorf("Address = %s", addr)
	}
}

func TestRetrieveCachesAndRefreshesBeforeExpiry(t *testing.T) {
	tests := []struct {
		name        string
		advance     time.Duration
		assumeErr   error
		wantAssumes int
		wantNewKey  bool
		wantErr     bool
		wantLastErr bool
	}{
		{name: "credentials are reused well before expiry", advance: 54 * time.Minute, wantAssumes: 1},
		{name: "credentials are refreshed five minutes before expiry", advance: 55 * time.Minute, wantAssumes: 2, wantNewKey: true},
		{name: "a failed refresh while the old credentials are valid serves the old locked credentials",
			advance: 56 * time.Minute, assumeErr: errors.New("throttled"), wantAssumes: 2, wantLastErr: true},
		{name: "a failed refresh after expiry is an error",
			advance: 61 * time.Minute, assumeErr: errors.New("throttled"), wantAssumes: 2, wantErr: true, wantLastErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, f, clk := newTestProvider(t, Options{RoleARN: roleARN})
			first, err := p.Retrieve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			clk.advance(tt.advance)
			if tt.assumeErr != nil {
				f.assumeErr = []error{tt.assumeErr}
			}
			got, err := p.Retrieve(context.Background())
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(f.assumes) != tt.wantAssumes {
				t.Errorf("%d AssumeRole calls, want %d", len(f.assumes), tt.wantAssumes)
			}
			if tt.wantErr {
				if got.HasKeys() {
					t.Error("an error came with credentials")
				}
			} else if (got.AccessKeyID != first.AccessKeyID) != tt.wantNewKey {
				t.Errorf("key %s after %s (first %s)", got.AccessKeyID, tt.advance, first.AccessKeyID)
			}
			if (p.LastError() != nil) != tt.wantLastErr {
				t.Errorf("LastError = %v", p.LastError())
			}
		})
	}
}

func TestRetrieveFailsClosed(t *testing.T) {
	tests := []struct {
		name     string
		o        Options
		identity string
		stsErr   error
		wantMsg  string
	}{
		{name: "a failed address lookup is an error",
			o: Options{RoleARN: roleARN, FindAddress: func(context.Context) (netip.Prefix, error) {
				return netip.Prefix{}, errors.New("checkip: timed out")
			}},
			wantMsg: "find the address AWS sees"},
		{name: "a private address is an error",
			o: Options{RoleARN: roleARN, FindAddress: func(context.Context) (netip.Prefix, error) {
				return netip.MustParsePrefix("10.1.2.3/32"), nil
			}},
			wantMsg: "not a public address"},
		{name: "a refused AssumeRole is an error",
			o:      Options{RoleARN: roleARN},
			stsErr: &smithy.GenericAPIError{Code: "AccessDenied", Message: "not trusted"}, wantMsg: "assume " + roleARN},
		{name: "without a role ARN and without an identity it is an error",
			o: Options{}, wantMsg: "find own role"},
		{name: "a caller that is not a role session is an error",
			o: Options{}, identity: "arn:aws:iam::" + account + ":user/alice", wantMsg: "set " + EnvRoleARN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, f, _ := newTestProvider(t, tt.o)
			f.identity = tt.identity
			if tt.stsErr != nil {
				f.assumeErr = []error{tt.stsErr}
			}
			creds, err := p.Retrieve(context.Background())
			if err == nil || creds.HasKeys() {
				t.Fatalf("Retrieve = %+v, %v; want an error and no credentials", creds, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || !strings.HasPrefix(err.Error(), "lockdown:") {
				t.Errorf("err = %q, want it to mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestRoleARNFromTheCallerIdentity(t *testing.T) {
	p, f, _ := newTestProvider(t, Options{})
	f.identity = "arn:aws:sts::" + account + ":assumed-role/fn-role/fn-name"
	if _, err := p.Retrieve(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(f.assumes[0].RoleArn); got != "arn:aws:iam::"+account+":role/fn-role" {
		t.Errorf("RoleArn = %s", got)
	}
}

func TestRoleARNFromCallerARN(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "an assumed-role session gives the role ARN without path",
			in: "arn:aws:sts::111122223333:assumed-role/fn-role/fn-name", want: "arn:aws:iam::111122223333:role/fn-role"},
		{name: "the partition is kept",
			in: "arn:aws-cn:sts::111122223333:assumed-role/r/s", want: "arn:aws-cn:iam::111122223333:role/r"},
		{name: "a user is rejected", in: "arn:aws:iam::111122223333:user/alice", wantErr: true},
		{name: "a federated user is rejected", in: "arn:aws:sts::111122223333:federated-user/bob", wantErr: true},
		{name: "garbage is rejected", in: "nope", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RoleARNFromCallerARN(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %q, %v; want %q (err %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestOptionsFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Options
		wantErr bool
	}{
		{name: "an empty environment means defaults", env: map[string]string{}},
		{name: "the role ARN, VPCs and duration are read",
			env:  map[string]string{EnvRoleARN: roleARN, EnvVPCs: vpcA + ", " + vpcB, EnvDuration: "20m"},
			want: Options{RoleARN: roleARN, VPCs: []string{vpcA, vpcB}, Duration: 20 * time.Minute}},
		{name: "a bad role ARN is an error", env: map[string]string{EnvRoleARN: "fn-role"}, wantErr: true},
		{name: "a bad VPC id is an error", env: map[string]string{EnvVPCs: vpcA + ",subnet-1"}, wantErr: true},
		{name: "a bad duration is an error", env: map[string]string{EnvDuration: "an hour"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := OptionsFromEnv(func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got.RoleARN != tt.want.RoleARN || !slices.Equal(got.VPCs, tt.want.VPCs) || got.Duration != tt.want.Duration {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	f := &fakeSTS{}
	tests := []struct {
		name   string
		client STSAPI
		o      Options
	}{
		{name: "a missing client is rejected", o: Options{}},
		{name: "a session shorter than 15 minutes is rejected", client: f, o: Options{Duration: 10 * time.Minute}},
		{name: "a session longer than role chaining allows is rejected", client: f, o: Options{Duration: 2 * time.Hour}},
		{name: "a refresh window as long as the session is rejected", client: f, o: Options{Duration: 15 * time.Minute, RefreshBefore: 15 * time.Minute}},
		{name: "an invalid session name is rejected", client: f, o: Options{SessionName: "has space"}},
		{name: "an invalid VPC id is rejected", client: f, o: Options{VPCs: []string{"vpc-nope"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.client, tt.o); err == nil {
				t.Error("New succeeded")
			}
		})
	}
}
