package stacks

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func getter(m map[string]any) Getter { return func(k string) any { return m[k] } }

func TestUnknownDefendersKeysAreErrorsThatListTheKnownOnes(t *testing.T) {
	tests := []struct {
		name    string
		ctx     map[string]any
		wantErr []string // empty: no error
	}{
		{"every known key is accepted", map[string]any{KeySSHCIDR: "none", KeyPrefix: "blue", KeyDetectorConc: 5.0}, nil},
		{"keys of other tools are not ours to judge", map[string]any{"@aws-cdk/core:target-partitions": []any{"aws"}, "aws:cdk:bundling-stacks": []any{}}, nil},
		{"a case typo is an error with the right spelling", map[string]any{"defenders:sshcidr": "203.0.113.10/32"},
			[]string{`"defenders:sshcidr"`, "did you mean defenders:sshCidr?", "known keys are", KeyLockdown}},
		{"an invented key is an error", map[string]any{"defenders:sshPort": 2222.0}, []string{`"defenders:sshPort"`, KeySSHCIDR}},
		{"the namespace is matched case-insensitively", map[string]any{"Defenders:maxAzs": 3.0}, []string{`"Defenders:maxAzs"`, "did you mean defenders:maxAzs?"}},
		{"several unknown keys are all named", map[string]any{"defenders:a": 1.0, "defenders:b": 2.0}, []string{`"defenders:a"`, `"defenders:b"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckKeys(tc.ctx)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestLoadConfigNewKeys(t *testing.T) {
	tests := []struct {
		name    string
		ctx     map[string]any
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{name: "no reserved concurrency by default (a new account's quota is 10)", ctx: map[string]any{},
			check: func(t *testing.T, c Config) {
				if c.DetectorReservedConcurrency != 0 || c.LockerReservedConcurrency != 0 {
					t.Errorf("reserved %d/%d, want none", c.DetectorReservedConcurrency, c.LockerReservedConcurrency)
				}
			}},
		{name: "reserved concurrency can be asked for", ctx: map[string]any{KeyDetectorConc: "5", KeyLockerConc: 2.0},
			check: func(t *testing.T, c Config) {
				if c.DetectorReservedConcurrency != 5 || c.LockerReservedConcurrency != 2 {
					t.Errorf("reserved %d/%d, want 5/2", c.DetectorReservedConcurrency, c.LockerReservedConcurrency)
				}
			}},
		{name: "a negative reservation is refused", ctx: map[string]any{KeyDetectorConc: -1.0}, wantErr: KeyDetectorConc},
		{name: "a prefix names stacks and exports", ctx: map[string]any{KeyPrefix: "blue"},
			check: func(t *testing.T, c Config) {
				if c.StackName("luke") != "blue-luke" || c.ExportName("dynamicIncomingSSHClient") != "blue-dynamicIncomingSSHClient" {
					t.Errorf("names %s %s", c.StackName("luke"), c.ExportName("dynamicIncomingSSHClient"))
				}
			}},
		{name: "no prefix keeps the historical names", ctx: map[string]any{},
			check: func(t *testing.T, c Config) {
				if c.StackName("luke") != "luke" {
					t.Errorf("name %s", c.StackName("luke"))
				}
			}},
		{name: "a prefix that cannot be part of a stack name is refused", ctx: map[string]any{KeyPrefix: "blue_team"}, wantErr: KeyPrefix},
		{name: "a prefix ending in a dash is refused", ctx: map[string]any{KeyPrefix: "blue-"}, wantErr: KeyPrefix},
		{name: "a hostile prefix is refused", ctx: map[string]any{KeyPrefix: "x\"}]"}, wantErr: KeyPrefix},
		{name: "detector regions are split and trimmed", ctx: map[string]any{KeyDetectorRegions: " eu-west-1, us-east-1 "},
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c.DetectorRegions, []string{"eu-west-1", "us-east-1"}) {
					t.Errorf("regions %q", c.DetectorRegions)
				}
			}},
		{name: "trust as comma-separated strings (cdk -c)", ctx: map[string]any{
			KeyTrustedEgress: "198.51.100.200, 192.0.2.128/28", KeySharedEndpoints: "vpce-0bbbb2222cccc3333"},
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c.Trust.EgressPrefixes, []string{"192.0.2.128/28", "198.51.100.200/32"}) ||
					!reflect.DeepEqual(c.Trust.SharedVPCEndpoints, []string{"vpce-0bbbb2222cccc3333"}) {
					t.Errorf("trust %+v", c.Trust)
				}
			}},
		{name: "trust as JSON lists (cdk.json)", ctx: map[string]any{
			KeyTrustedEgress: []any{"192.0.2.128/28"}, KeySharedEndpoints: []any{"vpce-0bbbb2222cccc3333", "vpce-01234567"}},
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c.Trust.SharedVPCEndpoints, []string{"vpce-01234567", "vpce-0bbbb2222cccc3333"}) {
					t.Errorf("trust %+v", c.Trust)
				}
			}},
		{name: "no trust by default", ctx: map[string]any{},
			check: func(t *testing.T, c Config) {
				if !c.Trust.Empty() {
					t.Errorf("trust %+v", c.Trust)
				}
			}},
		{name: "the whole internet is not a trusted egress", ctx: map[string]any{KeyTrustedEgress: "0.0.0.0/0"}, wantErr: KeyTrustedEgress},
		{name: "half the internet is not either", ctx: map[string]any{KeyTrustedEgress: []any{"128.0.0.0/1"}}, wantErr: "128.0.0.0/1"},
		{name: "a private range never reaches aws:SourceIp", ctx: map[string]any{KeyTrustedEgress: "10.0.0.0/8"}, wantErr: "not a public address"},
		{name: "a number is not a list", ctx: map[string]any{KeyTrustedEgress: 3.0}, wantErr: KeyTrustedEgress},
		{name: "a list of numbers is not a list of prefixes", ctx: map[string]any{KeySharedEndpoints: []any{1.0}}, wantErr: KeySharedEndpoints},
		{name: "a VPC id is not an endpoint id", ctx: map[string]any{KeySharedEndpoints: "vpc-0aaaa1111bbbb2222"}, wantErr: KeySharedEndpoints},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadConfig(getter(tc.ctx))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestEveryKnownKeyIsReadByLoadConfig(t *testing.T) {
	read := map[string]bool{}
	_, _ = LoadConfig(func(k string) any { read[k] = true; return nil })
	for _, k := range KnownKeys {
		if !read[k] {
			t.Errorf("%s is a known key but LoadConfig never reads it", k)
		}
	}
	for k := range read {
		if !strings.HasPrefix(k, KeyPrefixNamespace) {
			t.Errorf("LoadConfig reads %s, outside the defenders: namespace", k)
		}
		found := false
		for _, kk := range KnownKeys {
			found = found || kk == k
		}
		if !found {
			t.Errorf("LoadConfig reads %s, which is not in KnownKeys (an unknown-key error would reject it)", k)
		}
	}
}

// TestTheReadmeListsEveryKnownKey: the README's configuration table is where users look; a key
// the app accepts but the README does not name is a key nobody can find.
func TestTheReadmeListsEveryKnownKey(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range KnownKeys {
		if !strings.Contains(string(readme), "| `"+k+"` |") {
			t.Errorf("README.md's configuration table has no row for %s", k)
		}
	}
}
