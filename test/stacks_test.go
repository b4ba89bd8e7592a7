package test

import (
	"encoding/json"
	"github.com/defenders-cdk/defenders/test/cdktest"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// pinned is the context the snapshot tests use: a documentation address, never a real one.
var pinned = map[string]any{"defenders:sshCidr": "203.0.113.10/32"}

func TestSnapshotsOfEveryStackMatchTheGoldenTemplates(t *testing.T) {
	s := synth(t, pinned, nil)
	for _, name := range []string{"battleground", "matt", "luke", "detector", "locker"} {
		t.Run(name, func(t *testing.T) {
			tpl, ok := s.Templates[name]
			if !ok {
				t.Fatalf("stack %s was not synthesized; have %v", name, keys(s.Templates))
			}
			golden(t, name, tpl)
		})
	}
}

// messages reads every annotation (info, warning, error) from the synthesized manifest.
func messages(t *testing.T, s *synthed) []cdktest.Message { return cdktest.ReadMessages(t, s.Dir) }

// ingress lists every ingress CIDR of every security group in every template, as
// "stack:cidr:fromPort-toPort/protocol".
func ingress(s *synthed) []string {
	var out []string
	add := func(stack string, rule map[string]any) {
		cidr, _ := rule["CidrIp"].(string)
		if v6, ok := rule["CidrIpv6"].(string); ok {
			cidr = v6
		}
		out = append(out, stack+":"+cidr+":"+toString(rule["FromPort"])+"-"+toString(rule["ToPort"])+"/"+toString(rule["IpProtocol"]))
	}
	for stack, tpl := range s.Templates {
		for _, sg := range resources(tpl, "AWS::EC2::SecurityGroup") {
			rules, _ := props(sg)["SecurityGroupIngress"].([]any)
			for _, r := range rules {
				add(stack, r.(map[string]any))
			}
		}
		for _, r := range resources(tpl, "AWS::EC2::SecurityGroupIngress") {
			add(stack, props(r))
		}
	}
	sort.Strings(out)
	return out
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

func keys[V any](m map[string]V) []string { return cdktest.Keys(m) }

func TestSSHIngress(t *testing.T) {
	cases := []struct {
		name string
		ctx  map[string]any
		want []string
	}{
		{"one pinned CIDR becomes the only ingress rule", map[string]any{"defenders:sshCidr": "203.0.113.10/32"},
			[]string{"battleground:203.0.113.10/32:22-22/tcp"}},
		{"several pinned CIDRs, IPv4 and IPv6, each get tcp/22 only", map[string]any{"defenders:sshCidr": "198.51.100.0/24, 2001:db8::1/128"},
			[]string{"battleground:198.51.100.0/24:22-22/tcp", "battleground:2001:db8::1/128:22-22/tcp"}},
		{"none means no ingress at all", map[string]any{"defenders:sshCidr": "none"}, nil},
		{"an unreachable checkip fails closed with no ingress", map[string]any{}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := synth(t, c.ctx, nil)
			if got := ingress(s); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ingress = %v, want %v", got, c.want)
			}
		})
	}
}

func TestCheckipAddressBecomesTheSSHSource(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("192.0.2.44\n"))
	}))
	defer srv.Close()
	s := synth(t, map[string]any{"defenders:checkipUrl": srv.URL}, srv.Client())
	want := []string{"battleground:192.0.2.44/32:22-22/tcp"}
	if got := ingress(s); !reflect.DeepEqual(got, want) {
		t.Fatalf("ingress = %v, want %v", got, want)
	}
	for _, m := range messages(t, s) {
		if m.Level == "warning" && strings.Contains(m.Data, "defenders:sshCidr") {
			t.Errorf("unexpected fail-closed warning after a good lookup: %s", m.Data)
		}
	}
}

func TestFailingCheckipWarnsAndNamesTheContextKey(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer srv.Close()
	s := synth(t, map[string]any{"defenders:checkipUrl": srv.URL}, srv.Client())
	if got := ingress(s); len(got) != 0 {
		t.Fatalf("ingress = %v, want none (fail closed)", got)
	}
	var found bool
	for _, m := range messages(t, s) {
		if m.Level == "warning" && strings.Contains(m.Data, "defenders:sshCidr") && strings.Contains(m.Data, "500") {
			found = true
			if !strings.Contains(m.Path, "/battleground/") {
				t.Errorf("warning is on %s, want the SSH security group in the battleground stack", m.Path)
			}
		}
	}
	if !found {
		t.Fatalf("no warning naming defenders:sshCidr and the 500; messages: %v", messages(t, s))
	}
}

func TestBadContextValuesAreErrorsThatNameTheKey(t *testing.T) {
	cases := []struct {
		name, key string
		value     any
		wantIn    string
	}{
		{"the whole IPv4 internet is refused", "defenders:sshCidr", "0.0.0.0/0", "0.0.0.0/0"},
		{"the whole IPv6 internet is refused", "defenders:sshCidr", "::/0", "::/0"},
		{"a malformed CIDR is an error, not a warning", "defenders:sshCidr", "203.0.113.300/32", "203.0.113.300"},
		{"a CIDR hidden among good ones is still refused", "defenders:sshCidr", "203.0.113.10/32,0.0.0.0/0", "0.0.0.0/0"},
		{"a number where CIDRs are expected", "defenders:sshCidr", 42.0, "defenders:sshCidr"},
		{"checkip must be http or https", "defenders:checkipUrl", "file:///etc/passwd", "defenders:checkipUrl"},
		{"too many AZs", "defenders:maxAzs", 9.0, "defenders:maxAzs"},
		{"more NAT gateways than AZs", "defenders:natGateways", 3.0, "defenders:natGateways"},
		{"a hostile instance type", "defenders:instanceType", "t3.micro\"; rm -rf /", "defenders:instanceType"},
		{"a hostile managed policy name", "defenders:managedPolicies", "AdministratorAccess,../x y", "defenders:managedPolicies"},
		{"a switch that is neither true nor false", "defenders:detector", "maybe", "defenders:detector"},
		{"a lockdown switch given as a number", "defenders:lockdown", 1.0, "defenders:lockdown"},
		{"an alert address that is two addresses", "defenders:alertEmail", "a@example.com,b@example.com", "defenders:alertEmail"},
		{"a log group name with a wildcard", "defenders:trailLogGroup", "aws-cloudtrail-*", "defenders:trailLogGroup"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := synthErr(t, map[string]any{c.key: c.value})
			if !strings.Contains(err.Error(), c.wantIn) {
				t.Fatalf("error %q does not mention %q", err, c.wantIn)
			}
		})
	}
}

func TestNoCdkNagErrorsAndEverySuppressionHasAReason(t *testing.T) {
	s := synth(t, pinned, nil)
	for _, m := range messages(t, s) {
		if m.Level == "error" {
			t.Errorf("%s: %s", m.Path, m.Data)
		}
	}
	for stack, tpl := range s.Templates {
		rs, _ := tpl["Resources"].(map[string]any)
		for id, r := range rs {
			meta, _ := r.(map[string]any)["Metadata"].(map[string]any)
			nag, _ := meta["cdk_nag"].(map[string]any)
			rules, _ := nag["rules_to_suppress"].([]any)
			for _, rule := range rules {
				reason, _ := rule.(map[string]any)["reason"].(string)
				if len(reason) < 20 {
					t.Errorf("%s/%s: suppression %v has no real reason", stack, id, rule)
				}
			}
		}
	}
}

func TestDetectorAndLockerStacksCanBeTurnedOff(t *testing.T) {
	s := synth(t, map[string]any{"defenders:sshCidr": "none", "defenders:detector": "false", "defenders:locker": false}, nil)
	if got := keys(s.Templates); strings.Join(got, ",") != "battleground,luke,matt" {
		t.Fatalf("stacks = %v, want battleground, luke, matt", got)
	}
	s = synth(t, map[string]any{"defenders:sshCidr": "none", "defenders:lockdown": true}, nil)
	for _, stack := range []string{"detector", "locker"} {
		b, _ := json.Marshal(s.Templates[stack])
		if !strings.Contains(string(b), `"DEFENDERS_LOCKDOWN":"true"`) || !strings.Contains(string(b), "LockdownSelfAssume") {
			t.Errorf("%s: lockdown is not wired (env and self-assume grants)", stack)
		}
	}
}
