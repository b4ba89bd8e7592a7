package main

// Shipped-binary tests of accounts and regions: an organisation trail (or
// a multi-region trail) delivers other accounts' and other regions'
// records to the detector, which must judge each record against the
// region its instance lives in, and skip and count other accounts'.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

// The eu-west-1 fixture: an instance of the detector's account that lives
// in eu-west-1 (the function runs in lambdatest.Region, us-east-1), in a
// VPC with a NAT gateway and an endpoint (fakeVPCs).
const (
	euWest       = "eu-west-1"
	euInstanceID = "i-0e1e2e3e4e5e6e7e8"
	euPublicIP   = "192.0.2.77"
	euNATIP      = "192.0.2.78"
	euVPC        = "vpc-0e0e0e0e0e0e0e0e0"
	euEndpoint   = "vpce-0e0e0e0e0e0e0e0e"

	usWest           = "us-west-2"
	usWestInstanceID = "i-0f1f2f3f4f5f6f7f8"
	usWestPublicIP   = "198.51.100.201"

	euAttackerIP = "203.0.113.77"
)

// putRegionalInstances adds the eu-west-1 and us-west-2 instances.
func (f *fixture) putRegionalInstances() {
	f.cloud.PutInstance(lambdatest.Instance{ID: euInstanceID, State: "running", VPC: euVPC,
		PrivateIP: "10.20.1.5", PublicIP: euPublicIP, Region: euWest})
	f.cloud.PutInstance(lambdatest.Instance{ID: usWestInstanceID, State: "running", VPC: "vpc-0b0b0b0b0b0b0b0b0",
		PrivateIP: "10.30.1.5", PublicIP: usWestPublicIP, Region: usWest})
}

// testdataRecord reads a record of internal/cloudtrail/testdata (see its
// README for the AWS documentation the records follow), compacted as
// CloudTrail writes it to CloudWatch Logs.
func testdataRecord(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "internal", "cloudtrail", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// instanceCall is a record of a call made with the credentials of id's
// instance to the API of region from src.
func instanceCall(id, region, src string, n int) ctt.Event {
	return ctt.Event{
		Identity:    ctt.InstanceIdentity(id, "2.0"),
		EventSource: "s3.amazonaws.com", EventName: "ListBuckets", Management: true, ReadOnly: true, TLS: true,
		Region: region, SourceIP: src,
		EventID: fmt.Sprintf("6e1a9c2b-7d3f-4e5a-8b6c-%012d", n),
	}
}

// memberCall is instanceCall in the organisation's member account, as the
// organisation trail records it.
func memberCall(id, region, src string, n int) ctt.Event {
	e := instanceCall(id, region, src, n)
	e.Identity = e.Identity.InAccount(ctt.MemberAccount)
	e.RecipientAccount = ctt.MemberAccount
	return e
}

// sentAlert is what a published alert says.
type sentAlert struct{ typ, severity, uniqID, instanceRegion string }

func (f *fixture) sentAlerts(t testing.TB) []sentAlert {
	t.Helper()
	var out []sentAlert
	for _, a := range f.alerts(t) {
		region, _ := a["instance_region"].(string)
		out = append(out, sentAlert{a["type"].(string), a["severity"].(string), a["uniq_id"].(string), region})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].uniqID < out[j].uniqID })
	return out
}

// describedIDs returns the instance ids of every DescribeInstances call,
// by the region the call was signed for.
func (f *fixture) describedIDs() map[string][]string {
	out := map[string][]string{}
	for _, c := range f.cloud.EC2.Calls("DescribeInstances") {
		req := &lambdatest.Request{Form: c.Form}
		out[c.Region] = append(out[c.Region], filterValues(req, "instance-id")...)
		out[c.Region] = append(out[c.Region], req.List("InstanceId")...)
	}
	return out
}

// TestOrganisationTrailBatch sends one CloudWatch Logs delivery of an
// organisation trail's log group mixing the detector's account's records
// in its region and in another, and a member account's records. CloudTrail
// writes each account's records to its own log stream
// (account_ID_CloudTrail_region), and a subscription delivers one stream
// per invocation; the batch folds them into one delivery, the harder case
// for the processor (the decoder does not read the stream name).
func TestOrganisationTrailBatch(t *testing.T) {
	f := start(t, nil)
	f.putRegionalInstances()

	homeOK := instanceCall(ctt.InstanceID, lambdatest.Region, ctt.PublicIP, 1)
	euOK := instanceCall(euInstanceID, euWest, euPublicIP, 2)
	euViaNAT := instanceCall(euInstanceID, euWest, euNATIP, 3)
	euStolen := instanceCall(euInstanceID, euWest, euAttackerIP, 4)
	euStolenAgain := instanceCall(euInstanceID, "ap-southeast-2", euAttackerIP, 5)
	memberUser := ctt.IAMUserCall.Build()
	memberUser.Identity = memberUser.Identity.InAccount(ctt.MemberAccount)
	memberUser.RecipientAccount = ctt.MemberAccount
	records := [][]byte{
		// The detector's account, its region.
		homeOK.JSON(),
		ctt.StolenFromForeignIP.JSON(), // BadSource
		testdataRecord(t, "cross_account_kms_resource_owner_v1.09.json"), // our instance, the key owner's copy
		ctt.UnknownInstanceCall.JSON(),                                   // InstanceMissing: in no region
		// The detector's account, an instance in eu-west-1.
		euOK.JSON(),
		euViaNAT.JSON(),
		testdataRecord(t, "global_iam_from_instance_v1.09.json"), // IAM: awsRegion us-east-1
		euStolen.JSON(),      // BadSource, judged against eu-west-1
		euStolenAgain.JSON(), // the same instance and address: suppressed
		// A member account of the organisation.
		testdataRecord(t, "org_trail_member_instance_v1.09.json"),
		memberCall("i-0c1c2c3c4c5c6c7c8", "eu-central-1", "198.51.100.150", 6).JSON(),
		memberCall("i-0d1d2d3d4d5d6d7d8", lambdatest.Region, ctt.AttackerIP, 7).JSON(),
		memberCall(ctt.InstanceID, lambdatest.Region, "198.51.100.160", 8).JSON(), // an id our inventory knows: still not ours
		memberUser.JSON(), // not an instance session
	}
	s := f.invokeOK(t, ctt.CWLEvent(ctt.CWLPayload(records...)))

	t.Run("exactly the expected alerts are published", func(t *testing.T) {
		want := []sentAlert{
			{"BadSource", "HIGH", ctt.InstanceID + "-" + ctt.AttackerIP, lambdatest.Region},
			{"InstanceMissing", "MEDIUM", ctt.UnknownInstance + "-198.51.100.99", ""},
			{"BadSource", "HIGH", euInstanceID + "-" + euAttackerIP, euWest},
		}
		sort.Slice(want, func(i, j int) bool { return want[i].uniqID < want[j].uniqID })
		if got := f.sentAlerts(t); !slices.Equal(got, want) {
			t.Errorf("alerts\n got %+v\nwant %+v", got, want)
		}
		if s.Alerts != 3 || s.Published != 3 || s.Suppressed != 1 || s.DeadLettered != 0 {
			t.Errorf("summary %+v", s)
		}
	})
	t.Run("every record is counted", func(t *testing.T) {
		em := f.lastMetrics(t)
		want := map[string]int{
			"EventsSeen": len(records), "InstanceSessions": len(records) - 1,
			"Alerts": 3, "Suppressed": 1, "Published": 3, "Undecided": 0,
			"SkippedOtherAccount": 4, "SkippedUnattributable": 0, "SkippedOtherRegion": 0,
			"RegionLookupFailed": 0, "CrossRegion": 5,
		}
		for name, n := range want {
			if got := metric(t, em, name); got != n {
				t.Errorf("metric %s = %d, want %d", name, got, n)
			}
		}
		declared := map[string]bool{}
		for _, m := range em["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)["Metrics"].([]any) {
			declared[m.(map[string]any)["Name"].(string)] = true
		}
		for _, name := range []string{"SkippedOtherAccount", "SkippedUnattributable", "SkippedOtherRegion", "RegionLookupFailed", "CrossRegion"} {
			if !declared[name] {
				t.Errorf("metric %s is not declared in the EMF directive", name)
			}
		}
	})
	t.Run("the member account's instances are never looked up", func(t *testing.T) {
		for region, ids := range f.describedIDs() {
			for _, id := range []string{"i-0c1c2c3c4c5c6c7c8", "i-0d1d2d3d4d5d6d7d8"} {
				if slices.Contains(ids, id) {
					t.Errorf("DescribeInstances in %s asked for %s, a member account's instance", region, id)
				}
			}
		}
	})
	t.Run("the regions are listed once and the eu-west-1 VPC is described there", func(t *testing.T) {
		if n := f.cloud.EC2.Count("DescribeRegions"); n != 1 {
			t.Errorf("%d DescribeRegions calls, want 1", n)
		}
		var natRegions []string
		for _, c := range f.cloud.EC2.Calls("DescribeNatGateways") {
			natRegions = append(natRegions, c.Region)
		}
		if !slices.Contains(natRegions, euWest) {
			t.Errorf("DescribeNatGateways signed for %v, want eu-west-1 among them", natRegions)
		}
	})
	t.Run("the skipped records are logged with their account and event id", func(t *testing.T) {
		out := f.fn.Stdout()
		for _, want := range []string{`"reason":"SkippedOtherAccount"`, `"account":"` + ctt.MemberAccount + `"`,
			`"event_id":"d2e4f6a8-1b3c-4d5e-8f7a-9b0c1d2e3f40"`, `"msg":"skipped records"`} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %s", want)
			}
		}
	})
}

// TestCrossRegionLookupFailure checks that a record whose instance is not
// in the function's region, and whose lookup in the other regions fails,
// raises no InstanceMissing and is not dropped: it is counted and the
// invocation fails so that Lambda retries it.
func TestCrossRegionLookupFailure(t *testing.T) {
	throttled := lambdatest.Errorf(http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded.")
	tests := []struct {
		name  string
		setup func(f *fixture)
	}{
		{"DescribeRegions throttled", func(f *fixture) {
			f.cloud.EC2.InjectFaults("DescribeRegions", lambdatest.Repeat(10, throttled)...)
		}},
		{"one region throttled", func(f *fixture) { f.cloud.FailRegion("sa-east-1", throttled) }},
		{"one region refusing the function", func(f *fixture) {
			f.cloud.FailRegion("ap-northeast-3", lambdatest.Errorf(http.StatusForbidden, "UnauthorizedOperation",
				"You are not authorized to perform this operation. User: ... with an explicit deny in a service control policy"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, nil)
			tt.setup(f)
			_, fnErr := f.invoke(t, ctt.EventBridge(ctt.UnknownInstanceCall.JSON()))
			if fnErr == nil || fnErr.ErrorType != ErrTypeUndecided {
				t.Fatalf("function error %+v, want %s", fnErr, ErrTypeUndecided)
			}
			if !strings.Contains(fnErr.ErrorMessage, "cross-region instance lookup failed") {
				t.Errorf("error message %q does not say what failed", fnErr.ErrorMessage)
			}
			if n := len(f.sns.Messages()); n != 0 {
				t.Errorf("%d alerts published without an answer from every region", n)
			}
			em := f.lastMetrics(t)
			if metric(t, em, "RegionLookupFailed") != 1 || metric(t, em, "Undecided") != 1 || metric(t, em, "Alerts") != 0 {
				t.Errorf("metrics %v, want one undecided record counted as a failed region lookup", em)
			}
		})
	}
}

// TestRegionRestriction checks DEFENDERS_REGIONS: only the listed regions
// (and the function's) are searched, and a record whose instance is in
// none of them is skipped and counted rather than reported missing.
func TestRegionRestriction(t *testing.T) {
	f := start(t, map[string]string{EnvRegions: euWest})
	f.putRegionalInstances()
	s := f.invokeOK(t, ctt.CWLEvent(ctt.CWLPayload(
		instanceCall(euInstanceID, euWest, euPublicIP, 1).JSON(),         // judged: OK
		instanceCall(usWestInstanceID, usWest, ctt.AttackerIP, 2).JSON(), // in us-west-2, not searched
		ctt.UnknownInstanceCall.JSON(),                                   // not found where searched
	)))
	if s.Alerts != 0 || len(f.sns.Messages()) != 0 {
		t.Errorf("summary %+v, want no alert", s)
	}
	em := f.lastMetrics(t)
	if metric(t, em, "SkippedOtherRegion") != 2 || metric(t, em, "CrossRegion") != 1 || metric(t, em, "Undecided") != 0 {
		t.Errorf("metrics %v, want 2 skipped for their region and 1 judged in eu-west-1", em)
	}
	for region := range f.describedIDs() {
		if region != lambdatest.Region && region != euWest {
			t.Errorf("DescribeInstances signed for %s, outside %s", region, EnvRegions)
		}
	}
	if !strings.Contains(f.fn.Stdout(), `"reason":"SkippedOtherRegion"`) {
		t.Error("the skipped records are not logged")
	}
}

// TestCrossRegionCallCost reports the EC2 calls one EventBridge event of
// an instance of another region costs a cold container, with and without
// the record's awsRegion pointing at the instance's region, and a warm
// one.
func TestCrossRegionCallCost(t *testing.T) {
	tests := []struct {
		name      string
		event     []byte
		maxCalls  int // EC2 calls, cold
		wantAlert bool
	}{
		{"a call to the instance's own region", ctt.EventBridge(instanceCall(euInstanceID, euWest, euPublicIP, 1).JSON()), 5, false},
		{"a global-service call (awsRegion us-east-1)", ctt.EventBridge(testdataRecord(t, "global_iam_from_instance_v1.09.json")),
			1 + 1 + len(lambdatest.DefaultRegions) - 1 + 2, false},
		{"an instance in no region", ctt.EventBridge(ctt.UnknownInstanceCall.JSON()), 1 + 1 + len(lambdatest.DefaultRegions) - 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, nil)
			f.putRegionalInstances()
			f.invokeOK(t, tt.event)
			cold := f.cloud.EC2.Counts()
			total := 0
			for _, n := range cold {
				total += n
			}
			if total > tt.maxCalls {
				t.Errorf("%d EC2 calls (%v), want at most %d", total, cold, tt.maxCalls)
			}
			if got := len(f.sns.Messages()) > 0; got != tt.wantAlert {
				t.Errorf("alert published: %v, want %v", got, tt.wantAlert)
			}
			f.cloud.EC2.ResetCalls()
			f.invokeOK(t, tt.event)
			t.Logf("cold container: %d EC2 calls %v; the same event again: %d", total, cold, f.cloud.EC2.Count(""))
			if n := f.cloud.EC2.Count(""); n != 0 {
				t.Errorf("the same event again cost %d EC2 calls %v, want 0 (cached)", n, f.cloud.EC2.Counts())
			}
		})
	}
}

// TestAccountFromTheFunctionARN checks that without DEFENDERS_SELF_ROLE_ARN
// the function takes its account from the invoked function's ARN, and
// still skips other accounts' records.
func TestAccountFromTheFunctionARN(t *testing.T) {
	f := start(t, map[string]string{EnvSelfRoleARN: ""})
	s := f.invokeOK(t, ctt.CWLEvent(ctt.CWLPayload(
		memberCall("i-0d1d2d3d4d5d6d7d8", lambdatest.Region, ctt.AttackerIP, 1).JSON(),
		ctt.StolenFromForeignIP.JSON(),
	)))
	if s.Alerts != 1 || len(f.sns.Messages()) != 1 {
		t.Errorf("summary %+v, want the one alert of the detector's account", s)
	}
	if em := f.lastMetrics(t); metric(t, em, "SkippedOtherAccount") != 1 {
		t.Errorf("metrics %v, want the member account's record skipped", em)
	}
	if strings.Contains(f.fn.Stdout(), "account is unknown") {
		t.Error("the function says its account is unknown")
	}
}
