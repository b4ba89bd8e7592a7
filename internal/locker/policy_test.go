package locker

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/iameval"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
)

func TestCanonicalPolicy(t *testing.T) {
	base := `{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["203.0.113.10/32","198.51.100.5/32"]},"Null":{"aws:SourceIp":"false"}}},{"Sid":"B","Effect":"Deny","Action":"*","Resource":"*"}]}`
	tests := []struct {
		name  string
		other string
		same  bool
	}{
		{name: "whitespace and key order do not matter", same: true,
			other: `{ "Statement": [ {"Effect":"Deny", "Sid":"A", "Resource":"*", "Action":"*",
			  "Condition": {"Null": {"aws:SourceIp": "false"}, "NotIpAddress": {"aws:SourceIp": ["198.51.100.5/32", "203.0.113.10/32"]}}},
			  {"Sid":"B","Effect":"Deny","Action":["*"],"Resource":["*"]} ],
			  "Version": "2012-10-17" }`},
		{name: "statement order does not matter", same: true,
			other: `{"Version":"2012-10-17","Statement":[{"Sid":"B","Effect":"Deny","Action":"*","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["198.51.100.5/32","203.0.113.10/32","203.0.113.10/32"]},"Null":{"aws:SourceIp":false}}}]}`},
		{name: "a different address is a change", same: false,
			other: `{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["203.0.113.11/32","198.51.100.5/32"]},"Null":{"aws:SourceIp":"false"}}},{"Sid":"B","Effect":"Deny","Action":"*","Resource":"*"}]}`},
		{name: "a missing statement is a change", same: false,
			other: `{"Version":"2012-10-17","Statement":{"Sid":"B","Effect":"Deny","Action":"*","Resource":"*"}}`},
		{name: "a document that is not JSON is never the same", same: false, other: `{"Version":`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := samePolicy([]byte(base), []byte(tt.other)); got != tt.same {
				a, _ := CanonicalPolicy([]byte(base))
				b, _ := CanonicalPolicy([]byte(tt.other))
				t.Errorf("samePolicy = %v, want %v\n%s\n%s", got, tt.same, a, b)
			}
		})
	}
}

func TestDecodePolicyDocument(t *testing.T) {
	doc := `{"Version":"2012-10-17","Statement":[{"Sid":"A b+c","Effect":"Deny","Action":"*","Resource":"*"}]}`
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr bool
	}{
		{name: "an IAM URL-encoded document decodes to the JSON", in: strings.ReplaceAll(url.QueryEscape(doc), "+", "%20"), want: doc},
		{name: "a literal plus sign stays a plus sign", in: url.PathEscape(doc), want: doc},
		{name: "a plain JSON document is taken as it is", in: doc, want: doc},
		{name: "a bad escape is an error", in: "%zz", wantErr: true},
		{name: "a decoded document that is not JSON is an error", in: "hello%20world", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodePolicyDocument(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestPolicySize(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want int
	}{
		{name: "whitespace between tokens is not counted", doc: "{ \"a\" : [ 1 ,\n 2 ] }", want: len(`{"a":[1,2]}`)},
		{name: "whitespace inside strings is counted", doc: `{"a b":"c d"}`, want: 13},
		{name: "invalid JSON counts every visible character", doc: `{ "a" :`, want: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PolicySize([]byte(tt.doc)); got != tt.want {
				t.Errorf("PolicySize = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestLockedVPCs(t *testing.T) {
	render := func(l lockpolicy.Lock) string {
		d, err := lockpolicy.Render(l, lockpolicy.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := d.JSON()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	deny, _ := DenyAllDocument().JSON()
	tests := []struct {
		name string
		doc  string
		want []string
	}{
		{name: "a lock with two VPCs yields both", doc: render(lockpolicy.Lock{SourceIPs: []string{"203.0.113.10"}, VPCs: []string{vpcB, vpcA}}),
			want: []string{vpcA, vpcB}},
		{name: "a VPC-endpoints-only lock yields its VPC", doc: render(lockpolicy.Lock{VPCs: []string{vpcA}}), want: []string{vpcA}},
		{name: "a lock without VPCs yields none", doc: render(lockpolicy.Lock{SourceIPs: []string{"203.0.113.10"}})},
		{name: "the deny-all document yields none", doc: string(deny)},
		{name: "garbage yields none", doc: "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LockedVPCs([]byte(tt.doc)); !slices.Equal(got, tt.want) {
				t.Errorf("LockedVPCs = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestDenyAllDocumentIsMadeOfRendersAnyStatements checks that the deny-all
// document is made of exactly the statements lockpolicy.Render emits for
// "no source IP" and "no VPC", so it means what the lock documentation says.
func TestDenyAllDocumentIsMadeOfRendersAnyStatements(t *testing.T) {
	noIPs, err := lockpolicy.Render(lockpolicy.Lock{VPCs: []string{vpcA}}, lockpolicy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	noVPCs, err := lockpolicy.Render(lockpolicy.Lock{SourceIPs: []string{"203.0.113.10"}}, lockpolicy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []lockpolicy.Statement{noIPs.Statement[0], noVPCs.Statement[len(noVPCs.Statement)-1]}
	got := DenyAllDocument().Statement
	if !reflect.DeepEqual(got, want) {
		t.Errorf("deny-all statements = %+v\nwant %+v", got, want)
	}
	if want[0].Sid != lockpolicy.SidDenyPublicCallsFromAnyAddress || want[1].Sid != lockpolicy.SidDenyEndpointCallsFromAnyVpc {
		t.Errorf("unexpected Sids %q, %q", want[0].Sid, want[1].Sid)
	}
}

// TestDenyAllDocumentMeaning evaluates the deny-all lock with the
// independent IAM engine: nothing but calls by AWS services survives.
func TestDenyAllDocumentMeaning(t *testing.T) {
	doc, err := DenyAllDocument().JSON()
	if err != nil {
		t.Fatal(err)
	}
	allow := json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}`)
	principal := "arn:aws:sts::" + account + ":assumed-role/web/i-0abc1234def567890"
	creds := map[string]any{"aws:Ec2InstanceSourceVpc": vpcA, "aws:Ec2InstanceSourcePrivateIPv4": "10.0.1.23"}
	with := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range creds {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name string
		ctx  map[string]any
		want string
	}{
		{name: "a call from the instance's own public IP is denied",
			ctx: with(map[string]any{"aws:SourceIp": "203.0.113.10", "aws:ViaAWSService": "false"}), want: iameval.ExplicitlyDenied},
		{name: "a call through an endpoint of the instance's own VPC is denied",
			ctx: with(map[string]any{"aws:SourceVpc": vpcA, "aws:VpcSourceIp": "10.0.1.23", "aws:ViaAWSService": "false"}), want: iameval.ExplicitlyDenied},
		{name: "a call without any source address is denied",
			ctx: with(map[string]any{}), want: iameval.ExplicitlyDenied},
		{name: "a call an AWS service makes on the role's behalf is allowed",
			ctx: with(map[string]any{"aws:SourceIp": "52.94.0.10", "aws:ViaAWSService": "true"}), want: iameval.Allowed},
	}
	reqs := make([]iameval.Request, len(tests))
	for i, tt := range tests {
		reqs[i] = iameval.Request{Name: tt.name, Principal: principal, Action: "ec2:DescribeInstances", Resource: "*",
			Context: tt.ctx, IdentityPolicies: []iameval.Policy{{Name: "allow", Document: allow}, {Name: PolicyName, Document: doc}}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := iameval.Evaluate(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if results[i].Decision != tt.want {
				t.Errorf("decision = %s, want %s (denied by %q)", results[i].Decision, tt.want, results[i].DenyingStatements)
			}
		})
	}
}
