package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	"github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/internal/shadowrun"
)

// The shadow logs' world: the fixture instance in a public subnet, its
// VPC's NAT gateway, and a nat-egress lock proposed for its role.
var fixtureInstance = detect.Instance{
	ID: cloudtrailtest.InstanceID, VpcID: cloudtrailtest.VpcID, Region: cloudtrailtest.Region,
	PublicIPs:        []netip.Addr{netip.MustParseAddr(cloudtrailtest.PublicIP)},
	NATIPs:           []netip.Addr{netip.MustParseAddr(cloudtrailtest.NATIP)},
	PrimaryPrivateIP: netip.MustParseAddr(cloudtrailtest.PrivateIP), VPCEndpointIDs: []string{cloudtrailtest.OwnEndpoint},
}

// shadowLog runs a shadow runner over invocations of calls from the given
// addresses (one invocation per address list) and returns the detector's
// log: its other lines, the shadow report lines, the EMF records.
func shadowLog(t *testing.T, cfg shadowrun.Config, invocations ...[]string) string {
	t.Helper()
	r, err := shadowrun.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	n := 0
	for i, sources := range invocations {
		fmt.Fprintf(&log, "START RequestId: req-%d Version: $LATEST\n", i)
		for _, src := range sources {
			raw := cloudtrailtest.Event{Identity: cloudtrailtest.InstanceIdentity(cloudtrailtest.InstanceID, "2.0"), SourceIP: src,
				Time: time.Date(2026, 12, 1, 10, 0, n, 0, time.UTC), EventID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n)}.JSON()
			n++
			rec, err := cloudtrail.ParseRecord(raw)
			if err != nil {
				t.Fatal(err)
			}
			r.Observe(&rec, fixtureInstance, true)
		}
		fmt.Fprintf(&log, `{"time":"2026-12-01T10:00:00Z","level":"INFO","msg":"invocation done","requestId":"req-%d"}`+"\n", i)
		if err := r.Flush(&log, time.Date(2026, 12, 1, 10, i, 0, 0, time.UTC), fmt.Sprint("req-", i)); err != nil {
			t.Fatal(err)
		}
	}
	return log.String()
}

// cliJSON renders log lines as `aws logs filter-log-events` prints them.
func cliJSON(t *testing.T, log string) string {
	t.Helper()
	type event struct {
		Timestamp int64  `json:"timestamp"`
		Message   string `json:"message"`
	}
	var events []event
	for i, line := range strings.SplitAfter(strings.TrimSuffix(log, "\n"), "\n") {
		events = append(events, event{Timestamp: int64(i), Message: line})
	}
	b, err := json.MarshalIndent(map[string]any{"events": events, "searchedLogStreams": []any{}}, "", "    ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestShadowReview(t *testing.T) {
	natEgress := shadowrun.Config{Mode: lockpolicy.ModeNATEgress}
	nat, own := cloudtrailtest.NATIP, cloudtrailtest.PublicIP
	denials := shadowLog(t, natEgress, []string{nat, own, nat}, []string{own}, []string{nat, nat})
	clean := shadowLog(t, natEgress, []string{nat}, []string{nat, nat})
	otherProposal := shadowLog(t, shadowrun.Config{Mode: lockpolicy.ModeInstancePublicIP}, []string{own})
	cut := strings.Split(denials, "\n")
	for i, l := range cut {
		if strings.Contains(l, `"msg":"shadow report"`) {
			cut[i] = l[:len(l)/2]
			break
		}
	}
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files := map[string]string{
		"denials":  write("denials.log", denials),
		"clean":    write("clean.log", clean),
		"cli":      write("denials.json", cliJSON(t, denials)),
		"other":    write("other.log", otherProposal),
		"cut":      write("cut.log", strings.Join(cut, "\n")),
		"noreport": write("noreport.log", "START RequestId: x\nEND RequestId: x\n"),
	}

	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout []string
		wantStderr string
	}{
		{
			name:     "calls the proposal would deny exit 1 and the report shows them per role",
			args:     []string{"--shadow", files["denials"]},
			wantCode: 1,
			wantStdout: []string{"6 calls evaluated: 2 would be denied, 0 undetermined.",
				"| `arn:aws:iam::111122223333:role/web-server-role` | 6 | 2 | 0 | `DenyPublicCallsFromOtherAddresses`: 2 would deny |",
				"from `" + cloudtrailtest.PublicIP + "`",
				"3 shadow reports from `2026-12-01T10:00:00Z` to `2026-12-01T10:02:00Z`, proposal `lock:nat-egress`; 9 log messages skipped (not shadow reports)."},
			wantStderr: "enforcing lock:nat-egress would deny 2 of 6 call(s)",
		},
		{
			name:       "a log where nothing would be denied exits 0",
			args:       []string{"--shadow", files["clean"]},
			wantCode:   0,
			wantStdout: []string{"3 calls evaluated: 0 would be denied, 0 undetermined."},
		},
		{
			name:       "--json prints JSON and keeps the exit code",
			args:       []string{"--shadow", "--json", files["denials"]},
			wantCode:   1,
			wantStdout: []string{`"wouldDeny": 2`, `"proposal": "lock:nat-egress"`, `"reports": 3`},
		},
		{
			name:       "several files merge into one report",
			args:       []string{"--shadow", files["denials"], files["clean"]},
			wantCode:   1,
			wantStdout: []string{"9 calls evaluated: 2 would be denied", "5 shadow reports"},
		},
		{
			name:       "- reads the standard input",
			args:       []string{"--shadow", "-"},
			stdin:      clean,
			wantCode:   0,
			wantStdout: []string{"3 calls evaluated"},
		},
		{
			name:       "the JSON output of aws logs filter-log-events is read too",
			args:       []string{"--shadow", files["cli"]},
			wantCode:   1,
			wantStdout: []string{"6 calls evaluated: 2 would be denied"},
		},
		{
			name:       "a report cut short exits 2 naming the file and the line",
			args:       []string{"--shadow", files["cut"]},
			wantCode:   2,
			wantStderr: files["cut"] + ": shadow: line 3: a shadow report that is not one JSON object",
		},
		{
			name:       "logs without a shadow report exit 2: the gate must not pass on no data",
			args:       []string{"--shadow", files["noreport"]},
			wantCode:   2,
			wantStderr: "no shadow report in 1 file(s) (2 other log messages): is shadow mode on (DEFENDERS_SHADOW_MODE or DEFENDERS_SHADOW_POLICY",
		},
		{
			name:       "reports of two proposals exit 2",
			args:       []string{"--shadow", files["denials"], files["other"]},
			wantCode:   2,
			wantStderr: "reports of 2 different proposals were mixed: lock:instance-public-ip (1 reports), lock:nat-egress (3 reports)",
		},
		{
			name:       "--shadow without a file exits 2 with the usage",
			args:       []string{"--shadow"},
			wantCode:   2,
			wantStderr: "review --shadow [--json] FILE [FILE...]",
		},
		{
			name:       "a missing file exits 2",
			args:       []string{"--shadow", filepath.Join(dir, "missing.log")},
			wantCode:   2,
			wantStderr: "no such file or directory",
		},
		{
			name:       "the standard input twice exits 2",
			args:       []string{"--shadow", "-", "-"},
			wantCode:   2,
			wantStderr: "is given twice",
		},
		{
			name:       "-h shows both usages",
			args:       []string{"-h"},
			wantCode:   0,
			wantStderr: "usage: review [--json] [cdk.out | directory | template.json | template.yaml]\n       review --shadow [--json] FILE [FILE...]",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runIO(tc.args, strings.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("run(%q) = %d, want %d\nstderr: %s", tc.args, code, tc.wantCode, stderr.String())
			}
			for _, want := range tc.wantStdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout does not contain %q:\n%s", want, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr does not contain %q:\n%s", tc.wantStderr, stderr.String())
			}
			if tc.wantCode == 2 && stdout.Len() > 0 {
				t.Errorf("a failed run printed a report:\n%s", stdout.String())
			}
		})
	}
}
