package test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
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
	// Every variant's templates, each distinct content linted once, in one cfn-lint run: the
	// linter's start costs about 1.6 s and most variants share most templates byte for byte.
	dir := t.TempDir()
	var files []string
	usedBy := map[string][]string{} // linted file -> "variant: template" names
	byHash := map[[sha256.Size]byte]string{}
	for _, v := range variants {
		s := synth(t, v.ctx, nil)
		tpls, _ := filepath.Glob(filepath.Join(s.Dir, "*.template.json"))
		if len(tpls) < 3 {
			t.Fatalf("%s: only %d templates in %s", v.name, len(tpls), s.Dir)
		}
		for _, f := range tpls {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.Sum256(b)
			lf, ok := byHash[h]
			if !ok {
				lf = filepath.Join(dir, fmt.Sprintf("%d-%s", len(files), filepath.Base(f)))
				if err := os.WriteFile(lf, b, 0o600); err != nil {
					t.Fatal(err)
				}
				byHash[h] = lf
				files = append(files, lf)
			}
			usedBy[lf] = append(usedBy[lf], v.name+": "+filepath.Base(f))
		}
	}
	out, err := exec.Command(lint, append([]string{"--format", "parseable"}, files...)...).CombinedOutput()
	msg := strings.TrimSpace(string(out))
	for _, f := range files {
		msg = strings.ReplaceAll(msg, f, fmt.Sprintf("%s (%s)", filepath.Base(f), strings.Join(usedBy[f], "; ")))
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode()&2 == 0: // bit 2 is "errors"; 4 warnings, 8 informational
	default:
		t.Errorf("cfn-lint found errors (%v):\n%s", err, msg)
	}
	if msg != "" {
		t.Logf("cfn-lint warnings:\n%s", msg)
	}
	t.Logf("%d distinct templates of %d variants linted", len(files), len(variants))
}
