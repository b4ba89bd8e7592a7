package locker

import (
	"strings"
	"testing"
)

func TestNewValidatesRolePathAndPolicyName(t *testing.T) {
	c := newFakeCloud()
	cases := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"the defaults are valid", Config{}, ""},
		{"a nested path is valid", Config{RolePath: "/teams/web/"}, ""},
		{"the root path would manage every role", Config{RolePath: "/"}, "role path"},
		{"a path without the trailing slash", Config{RolePath: "/defenders"}, "role path"},
		{"a path with a space", Config{RolePath: "/a b/"}, "role path"},
		{"a policy name with a slash", Config{PolicyName: "../lock"}, "not an IAM policy name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.EC2, cfg.IAM, cfg.CloudFormation = c, c, c
			l, err := New(cfg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			case tc.wantErr == "" && (l.cfg.RolePath == "" || l.cfg.PolicyName == ""):
				t.Fatalf("defaults not applied: %+v", l.cfg)
			}
		})
	}
}
