package test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/test/cdktest"
)

// Configuration that cannot be wrong silently: each of these used to synthesize something else
// than what was asked for (or nothing useful) without a word.
func TestConfigurationMistakesAreErrors(t *testing.T) {
	cases := []struct {
		name   string
		ctx    map[string]any
		wantIn []string
	}{
		{"a typo in a key name", map[string]any{"defenders:sshcidr": "203.0.113.10/32"}, []string{"defenders:sshcidr", "did you mean defenders:sshCidr?"}},
		{"a loopback SSH source", map[string]any{"defenders:sshCidr": "127.0.0.1"}, []string{"defenders:sshCidr", "loopback"}},
		{"a link-local SSH source", map[string]any{"defenders:sshCidr": "169.254.10.1/32"}, []string{"link-local"}},
		{"a multicast SSH source", map[string]any{"defenders:sshCidr": "239.1.1.1"}, []string{"multicast"}},
		{"three AZs for an environment-agnostic stack, which would get two",
			map[string]any{"defenders:sshCidr": "none", "defenders:maxAzs": 3.0}, []string{"defenders:maxAzs", "environment-agnostic", "CDK_DEFAULT_ACCOUNT"}},
		{"a detector region that is not one", map[string]any{"defenders:sshCidr": "none", "defenders:detectorRegions": "eu-west-1,mars"}, []string{"defenders:detectorRegions", "mars"}},
		{"a reservation beyond the Lambda quota range", map[string]any{"defenders:lockerReservedConcurrency": 5000.0}, []string{"defenders:lockerReservedConcurrency"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("CDK_DEFAULT_ACCOUNT", "")
			t.Setenv("CDK_DEFAULT_REGION", "")
			err := synthErr(t, c.ctx)
			for _, w := range c.wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestThreeAZsAreHonouredWithAnEnvironment: with the account and region the CLI passes, the VPC
// spans the three zones that the context lookup recorded (cdk.context.json in a real project).
func TestThreeAZsAreHonouredWithAnEnvironment(t *testing.T) {
	t.Setenv("CDK_DEFAULT_ACCOUNT", "111122223333")
	t.Setenv("CDK_DEFAULT_REGION", "eu-west-1")
	s := synth(t, map[string]any{"defenders:sshCidr": "none", "defenders:maxAzs": 3.0, "defenders:detector": false, "defenders:locker": false,
		"availability-zones:account=111122223333:region=eu-west-1": []any{"eu-west-1a", "eu-west-1b", "eu-west-1c"}}, nil)
	subnets := cdktest.Resources(s.Templates["battleground"], "AWS::EC2::Subnet")
	azs := map[string]bool{}
	for _, sn := range subnets {
		az, _ := cdktest.Props(sn)["AvailabilityZone"].(string)
		azs[az] = true
	}
	if len(azs) != 3 {
		t.Fatalf("subnets in %v, want three zones", cdktest.Keys(azs))
	}
}

// TestTwoCopiesCoexist: with defenders:prefix, two copies of the app in one account and region
// share no stack name and no export name.
func TestTwoCopiesCoexist(t *testing.T) {
	names := func(ctx map[string]any) (stacks, exports map[string]bool) {
		s := synth(t, ctx, nil)
		stacks, exports = map[string]bool{}, map[string]bool{}
		for name, tpl := range s.Templates {
			stacks[name] = true
			outs, _ := tpl["Outputs"].(map[string]any)
			for _, o := range outs {
				if e, ok := o.(map[string]any)["Export"].(map[string]any); ok {
					b, _ := json.Marshal(e["Name"])
					exports[string(b)] = true
				}
			}
		}
		return stacks, exports
	}
	s1, e1 := names(map[string]any{"defenders:sshCidr": "none"})
	s2, e2 := names(map[string]any{"defenders:sshCidr": "none", "defenders:prefix": "blue"})
	if !s2["blue-battleground"] || !s2["blue-luke"] || !s2["blue-detector"] {
		t.Errorf("prefixed stacks %v", cdktest.Keys(s2))
	}
	if !e2[`"blue-dynamicIncomingSSHClient"`] {
		t.Errorf("prefixed exports %v", cdktest.Keys(e2))
	}
	for n := range s1 {
		if s2[n] {
			t.Errorf("stack name %s is used by both copies", n)
		}
	}
	for n := range e1 {
		if e2[n] {
			t.Errorf("export name %s is used by both copies", n)
		}
	}
	if len(e1) == 0 {
		t.Errorf("no export at all: the cross-stack references and the seed's SSH group export are gone")
	}
}

func TestWarningsThatSayWhy(t *testing.T) {
	t.Run("a private SSH source is allowed with a warning on the SSH group", func(t *testing.T) {
		s := synth(t, map[string]any{"defenders:sshCidr": "10.20.0.0/16", "defenders:detector": false, "defenders:locker": false}, nil)
		ws := warnings(t, s, "private range")
		if len(ws) != 1 || !strings.Contains(ws[0].Path, "/battleground/") || !strings.Contains(ws[0].Data, "10.20.0.0/16") {
			t.Fatalf("warnings %v", ws)
		}
	})
	t.Run("a public SSH source gets no such warning", func(t *testing.T) {
		s := synth(t, map[string]any{"defenders:sshCidr": "203.0.113.10/32", "defenders:detector": false, "defenders:locker": false}, nil)
		if ws := warnings(t, s, "private range"); len(ws) != 0 {
			t.Fatalf("warnings %v", ws)
		}
	})
	t.Run("full-access policies on the unlocked control are a warning on Matt's role", func(t *testing.T) {
		s := synth(t, map[string]any{"defenders:sshCidr": "none", "defenders:detector": false, "defenders:locker": false,
			"defenders:managedPolicies": "AdministratorAccess,AmazonS3FullAccess,AmazonEC2ReadOnlyAccess"}, nil)
		ws := warnings(t, s, "unlocked instance role")
		if len(ws) != 1 || !strings.HasPrefix(ws[0].Path, "/matt/") || !strings.Contains(ws[0].Data, "has AdministratorAccess, AmazonS3FullAccess:") {
			t.Fatalf("warnings %v", ws)
		}
	})
	t.Run("read-only policies on Matt get no warning", func(t *testing.T) {
		s := synth(t, map[string]any{"defenders:sshCidr": "none", "defenders:detector": false, "defenders:locker": false}, nil)
		if ws := warnings(t, s, "unlocked instance role"); len(ws) != 0 {
			t.Fatalf("warnings %v", ws)
		}
	})
}

func warnings(t *testing.T, s *synthed, substr string) []cdktest.Message {
	var out []cdktest.Message
	for _, m := range messages(t, s) {
		if m.Level == "warning" && strings.Contains(m.Data, substr) {
			out = append(out, m)
		}
	}
	return out
}

func TestReservedConcurrencyOnlyWhenAskedFor(t *testing.T) {
	fn := func(s *synthed, stack string) map[string]any {
		for _, r := range cdktest.Resources(s.Templates[stack], "AWS::Lambda::Function") {
			return cdktest.Props(r)
		}
		t.Fatalf("no function in %s", stack)
		return nil
	}
	s := synth(t, pinned, nil)
	for _, st := range []string{"detector", "locker"} {
		if v, ok := fn(s, st)["ReservedConcurrentExecutions"]; ok {
			t.Errorf("%s reserves %v by default: a new account refuses it", st, v)
		}
	}
	s = synth(t, map[string]any{"defenders:sshCidr": "none", "defenders:detectorReservedConcurrency": 5.0, "defenders:lockerReservedConcurrency": "2"}, nil)
	if fn(s, "detector")["ReservedConcurrentExecutions"] != 5.0 || fn(s, "locker")["ReservedConcurrentExecutions"] != 2.0 {
		t.Errorf("reservations not applied")
	}
}

// TestPlainCdkCommandsStayQuiet: `cdk synth` and `cdk deploy` run from the project (not only
// through make) send no telemetry and fetch no notices, because cdk.json says so. The CLI's
// once-a-day version check can only be turned off with CDK_DISABLE_VERSION_CHECK=1 (the CLI reads
// no setting for it), which the Makefile exports and the README's deploy steps set.
func TestPlainCdkCommandsStayQuiet(t *testing.T) {
	for _, file := range []string{"../cdk.json", "../examples/cdk.json"} {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var cfg struct {
				VersionReporting *bool          `json:"versionReporting"`
				Notices          *bool          `json:"notices"`
				Context          map[string]any `json:"context"`
			}
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg.VersionReporting == nil || *cfg.VersionReporting {
				t.Error(`"versionReporting": false is missing`)
			}
			if cfg.Notices == nil || *cfg.Notices {
				t.Error(`"notices": false is missing (the CLI would fetch notices)`)
			}
			if cfg.Context["cli-telemetry"] != false {
				t.Error(`context "cli-telemetry": false is missing (the CLI would send telemetry)`)
			}
		})
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "export CDK_DISABLE_VERSION_CHECK=1") {
		t.Error("the README's deploy steps do not set CDK_DISABLE_VERSION_CHECK=1")
	}
}

// TestTheLockerIsDestroyedBeforeLuke: `cdk destroy --all` deletes stacks in reverse dependency
// order, so the locker (which could otherwise rewrite Luke's lock during the deletion) goes
// before Luke; with the detector on, before the detector too (its alarms use the topic).
func TestTheLockerIsDestroyedBeforeLuke(t *testing.T) {
	s := synth(t, pinned, nil)
	b, err := os.ReadFile(s.Dir + "/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Artifacts map[string]struct {
			Dependencies []string `json:"dependencies"`
		} `json:"artifacts"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	deps := strings.Join(m.Artifacts["locker"].Dependencies, ",")
	for _, want := range []string{"luke", "detector"} {
		if !strings.Contains(","+deps+",", ","+want+",") {
			t.Errorf("locker depends on [%s], want %s among them", deps, want)
		}
	}
}

// TestTrustReachesEveryConsumer: the two trust keys, set once, reach Luke's deploy-time lock, the
// locker's environment (which renders them into every lock it writes) and the detector's (which
// accepts calls from them); without the keys, none of the three mentions them.
func TestTrustReachesEveryConsumer(t *testing.T) {
	const prefix, endpoint = "192.0.2.128/28", "vpce-0bbbb2222cccc3333"
	env := func(s *synthed, stack string) map[string]any {
		for _, r := range cdktest.Resources(s.Templates[stack], "AWS::Lambda::Function") {
			e, _ := cdktest.Props(r)["Environment"].(map[string]any)
			v, _ := e["Variables"].(map[string]any)
			return v
		}
		t.Fatalf("no function in %s", stack)
		return nil
	}
	s := synth(t, map[string]any{"defenders:sshCidr": "none", contract.KeyTrustedEgressPrefixes: prefix, contract.KeySharedVPCEndpoints: []any{endpoint}}, nil)
	luke, err := json.Marshal(s.Templates["luke"])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"` + prefix + `"`, `"aws:SourceVpce":"` + endpoint + `"`} {
		if !strings.Contains(string(luke), want) {
			t.Errorf("Luke's lock lacks %s", want)
		}
	}
	for _, stack := range []string{"locker", "detector"} {
		v := env(s, stack)
		if v[contract.EnvTrustedEgressPrefixes] != prefix || v[contract.EnvSharedVPCEndpoints] != endpoint {
			t.Errorf("%s environment %v lacks the trust", stack, v)
		}
	}
	s = synth(t, pinned, nil)
	for _, stack := range []string{"locker", "detector"} {
		if v := env(s, stack); v[contract.EnvTrustedEgressPrefixes] != nil || v[contract.EnvSharedVPCEndpoints] != nil {
			t.Errorf("%s environment %v has a trust nobody configured", stack, v)
		}
	}
}
