package test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryTemplatePassesCfnLint validates every synthesized template of the default app and of
// its main variants with cfn-lint (the AWS CloudFormation linter: resource schemas, property
// values, intrinsic functions), with zero errors. Warnings are logged. cfn-lint must be on PATH
// (pip install cfn-lint; these machines have 1.51.0 preinstalled): a missing linter fails the
// test rather than skipping a check that looks like it passed.
func TestEveryTemplatePassesCfnLint(t *testing.T) {
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Fatalf("cfn-lint is not on PATH (pip install cfn-lint): %v", err)
	}
	variants := []struct {
		name string
		ctx  map[string]any
	}{
		{"default", pinned},
		{"NAT gateways and private subnets", map[string]any{"defenders:sshCidr": "203.0.113.10/32", "defenders:natGateways": 2.0}},
		{"lockdown", map[string]any{"defenders:sshCidr": "none", "defenders:lockdown": true}},
		{"trail log group and alert e-mail", map[string]any{"defenders:sshCidr": "none", "defenders:trailLogGroup": "aws-cloudtrail-logs-111122223333",
			"defenders:alertEmail": "secops@example.com"}},
		{"prefix, reservations and detector regions", map[string]any{"defenders:sshCidr": "2001:db8::/64,203.0.113.0/24", "defenders:prefix": "blue",
			"defenders:detectorReservedConcurrency": 5.0, "defenders:lockerReservedConcurrency": 2.0, "defenders:detectorRegions": "us-east-1,eu-west-1"}},
		{"failed lookup (no SSH ingress), no detector", map[string]any{"defenders:detector": false}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			s := synth(t, v.ctx, nil)
			files, _ := filepath.Glob(filepath.Join(s.Dir, "*.template.json"))
			if len(files) < 3 {
				t.Fatalf("only %d templates in %s", len(files), s.Dir)
			}
			out, err := exec.Command(lint, append([]string{"--format", "parseable"}, files...)...).CombinedOutput()
			var ee *exec.ExitError
			switch {
			case err == nil:
			case errors.As(err, &ee) && ee.ExitCode()&2 == 0: // bit 2 is "errors"; 4 warnings, 8 informational
			default:
				t.Errorf("cfn-lint found errors (%v):\n%s", err, out)
			}
			if msg := strings.TrimSpace(string(out)); msg != "" {
				t.Logf("cfn-lint warnings:\n%s", strings.ReplaceAll(msg, s.Dir+"/", ""))
			}
		})
	}
}
