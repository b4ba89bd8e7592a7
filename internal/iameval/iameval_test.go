package iameval

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

const testPrincipal = "arn:aws:sts::111122223333:assumed-role/luke-role/i-0abc1234def567890"

const allowDescribe = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}`

// These tests need node and @cloud-copilot/iam-simulate under .tools; they
// fail (never skip) when they are missing: `make tools` installs them.

func TestFindNodeLocatesTheSimulator(t *testing.T) {
	nodePath, modulesDir, err := FindNode()
	if err != nil {
		t.Fatalf("FindNode: %v", err)
	}
	if nodePath == "" || !strings.HasSuffix(modulesDir, "node_modules") {
		t.Fatalf("FindNode = %q, %q; want a node binary and a node_modules folder", nodePath, modulesDir)
	}
}

func TestEvaluateReturnsOneDecisionPerRequest(t *testing.T) {
	denyFromOtherIPs := `{"Version":"2012-10-17","Statement":[{"Sid":"DenyOtherIps","Effect":"Deny","Action":"*","Resource":"*",` +
		`"Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.10/32"}}}]}`
	tests := []struct {
		name       string
		policies   []string
		sourceIP   string
		wantResult string
		wantDenied []string
	}{
		{"a request an identity policy allows is allowed", []string{allowDescribe}, "203.0.113.10", Allowed, nil},
		{"a request no policy allows is implicitly denied", nil, "203.0.113.10", ImplicitlyDenied, nil},
		{"a request a deny statement matches is explicitly denied and names the statement",
			[]string{allowDescribe, denyFromOtherIPs}, "198.51.100.7", ExplicitlyDenied, []string{"DenyOtherIps"}},
	}
	reqs := make([]Request, len(tests))
	for i, tt := range tests {
		var pols []Policy
		for j, p := range tt.policies {
			pols = append(pols, Policy{Name: "policy" + string(rune('A'+j)), Document: json.RawMessage(p)})
		}
		reqs[i] = Request{
			Name: tt.name, Principal: testPrincipal, Action: "ec2:DescribeInstances", Resource: "*",
			Context:          map[string]any{"aws:SourceIp": tt.sourceIP, "aws:CalledVia": []string{"cloudformation.amazonaws.com"}},
			IdentityPolicies: pols,
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := Evaluate(ctx, reqs)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := results[i]
			if got.Name != tt.name || got.Decision != tt.wantResult {
				t.Errorf("got %q %s, want %s; explain: %s", got.Name, got.Decision, tt.wantResult, got.Explain)
			}
			if !slices.Equal(got.DenyingStatements, tt.wantDenied) {
				t.Errorf("denying statements = %q, want %q", got.DenyingStatements, tt.wantDenied)
			}
		})
	}
}

func TestEvaluateAppliesServiceControlPolicies(t *testing.T) {
	denyOtherIPs := Policy{Name: "DenyOtherIps", Document: json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Sid":"DenyOtherIps",` +
		`"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.10/32"}}}]}`)}
	fullAccess := Policy{Name: "FullAWSAccess", Document: json.RawMessage(FullAWSAccessSCP)}
	root := func(p ...Policy) SCPLevel { return SCPLevel{Target: "r-abcd", Policies: p} }
	acct := func(p ...Policy) SCPLevel { return SCPLevel{Target: "111122223333", Policies: p} }
	tests := []struct {
		name        string
		scps        []SCPLevel
		sourceIP    string
		want        string
		wantDeniers []string
	}{
		{"FullAWSAccess at every level lets the identity policy decide",
			[]SCPLevel{root(fullAccess), acct(fullAccess)}, "198.51.100.7", Allowed, nil},
		{"a deny SCP at the account's level that does not match changes nothing",
			[]SCPLevel{root(fullAccess), acct(fullAccess, denyOtherIPs)}, "203.0.113.10", Allowed, nil},
		{"a deny SCP at the account's level that matches denies and is named as an SCP statement",
			[]SCPLevel{root(fullAccess), acct(fullAccess, denyOtherIPs)}, "198.51.100.7", ExplicitlyDenied, []string{"DenyOtherIps"}},
		{"a level without an allowing SCP denies implicitly although nothing there denies",
			[]SCPLevel{root(fullAccess), acct(denyOtherIPs)}, "203.0.113.10", ImplicitlyDenied, nil},
	}
	reqs := make([]Request, len(tests))
	for i, tt := range tests {
		reqs[i] = Request{
			Name: tt.name, Principal: testPrincipal, Action: "ec2:DescribeInstances", Resource: "*",
			Context:          map[string]any{"aws:SourceIp": tt.sourceIP},
			IdentityPolicies: []Policy{{Name: "allow", Document: json.RawMessage(allowDescribe)}},
			SCPs:             tt.scps,
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results, err := Evaluate(ctx, reqs)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := results[i]
			if got.Decision != tt.want {
				t.Errorf("decision = %s, want %s; explain: %s", got.Decision, tt.want, got.Explain)
			}
			if !slices.Equal(got.DenyingSCPStatements, tt.wantDeniers) {
				t.Errorf("denying SCP statements = %q, want %q", got.DenyingSCPStatements, tt.wantDeniers)
			}
			if len(got.DenyingStatements) != 0 {
				t.Errorf("denying identity statements = %q, want none: an SCP is not an identity policy", got.DenyingStatements)
			}
		})
	}
}

func TestEvaluateFailsLoudly(t *testing.T) {
	good := Request{
		Name: "good", Principal: testPrincipal, Action: "ec2:DescribeInstances", Resource: "*",
		Context:          map[string]any{"aws:SourceIp": "203.0.113.10"},
		IdentityPolicies: []Policy{{Name: "allow", Document: json.RawMessage(allowDescribe)}},
	}
	tests := []struct {
		name    string
		mutate  func(*Request)
		wantErr string
	}{
		{"a policy the simulator rejects is an error, not a deny", withDenyCondition(`{"StringEquals":"not an object"}`), "simulator errors"},
		{"an unknown condition operator is an error, not a deny", withDenyCondition(`{"NoSuchOperator":{"aws:SourceIp":"1.2.3.4"}}`), "unknown condition operator"},
		{"an unknown condition key is an error, not a deny", withDenyCondition(`{"StringEquals":{"aws:NoSuchKey":"1"}}`), "unknown condition key"},
		{"a Null condition that is neither true nor false is an error", withDenyCondition(`{"Null":{"aws:SourceIp":"maybe"}}`), "is not true or false"},
		{"an invalid CIDR is an error, not a deny", withDenyCondition(`{"IpAddress":{"aws:SourceIp":"garbage"}}`), "not a valid CIDR"},
		{"a context key that does not apply to the action is an error", func(r *Request) {
			r.Context["aws:NoSuchKey"] = "x"
		}, "silently dropped"},
		{"an unknown action is an error", func(r *Request) { r.Action = "ec2:NoSuchAction" }, "simulator errors"},
		{"a context value that is neither string nor list is an error", func(r *Request) { r.Context["aws:SourceIp"] = 42 }, "not a string"},
		{"a principal without an account is an error", func(r *Request) { r.Principal = "luke" }, "12-digit account"},
		{"a policy that is not JSON is an error", func(r *Request) {
			r.IdentityPolicies = []Policy{{Name: "broken", Document: json.RawMessage(`{`)}}
		}, "not valid JSON"},
		{"an SCP level without policies is an error, not an implicit deny", func(r *Request) {
			r.SCPs = []SCPLevel{{Target: "r-abcd"}}
		}, "has no policies"},
		{"an SCP the simulator rejects is an error, not a deny", func(r *Request) {
			r.SCPs = []SCPLevel{{Target: "r-abcd", Policies: []Policy{{Name: "with-principal", Document: json.RawMessage(
				`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}`)}}}}
		}, "simulator errors"},
		{"an SCP with an unknown condition key is an error, not a deny", func(r *Request) {
			r.SCPs = []SCPLevel{{Target: "r-abcd", Policies: []Policy{{Name: "FullAWSAccess", Document: json.RawMessage(FullAWSAccessSCP)},
				{Name: "deny", Document: json.RawMessage(
					`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:NoSuchKey":"1"}}}]}`)}}}}
		}, "unknown condition key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good
			r.Context = map[string]any{"aws:SourceIp": "203.0.113.10"}
			r.IdentityPolicies = slices.Clone(good.IdentityPolicies)
			tt.mutate(&r)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, err := Evaluate(ctx, []Request{r})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "iameval: ") {
				t.Fatalf("Evaluate error = %v, want an iameval error containing %q", err, tt.wantErr)
			}
		})
	}
}

// withDenyCondition returns a mutation that gives the request a Deny
// statement with the given Condition block.
func withDenyCondition(condition string) func(*Request) {
	return func(r *Request) {
		r.IdentityPolicies = append(r.IdentityPolicies, Policy{Name: "deny", Document: json.RawMessage(
			`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*","Condition":` + condition + `}]}`)})
	}
}

func TestEvaluateRejectsDuplicateNames(t *testing.T) {
	r := Request{Name: "same", Principal: testPrincipal, Action: "ec2:DescribeInstances", Resource: "*"}
	_, err := Evaluate(context.Background(), []Request{r, r})
	if err == nil || !strings.Contains(err.Error(), "duplicate name") {
		t.Fatalf("Evaluate error = %v, want a duplicate name error", err)
	}
}
