package main

// The shipped binary as the central detector of an organisation: member
// accounts' instance sessions arrive one EventBridge event at a time from
// the central bus, and each is judged against its own account's inventory,
// read with the real SDK through the member role (STS AssumeRole, then EC2
// signed with the member's session) from the fake Cloud, which answers per
// account by the session's access key.

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/contract"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

const (
	EnvOrganizationID = contract.EnvOrganizationID
	EnvMemberRoleName = contract.EnvMemberRoleName

	memberRole     = "defenders-inventory"
	memberNoStack  = "555566667777" // a member whose member stack is missing
	memberThrottle = "222233334444" // a member whose first AssumeRole is throttled
)

func TestTheCentralDetectorOfAnOrganisation(t *testing.T) {
	f, env := fakeAWS(t)
	env[EnvOrganizationID] = "o-a1b2c3d4e5"
	env[EnvMemberRoleName] = memberRole
	f.cloud.AddMember(ctt.MemberAccount, memberRole)
	f.cloud.AddMember(memberThrottle, memberRole)
	f.cloud.AddMember(memberNoStack, "")
	member := func(id, region, ip string) lambdatest.Instance {
		return lambdatest.Instance{ID: id, State: "running", VPC: "vpc-0707070707070707a", PrivateIP: "10.7.0.5", PublicIP: ip,
			Region: region, Account: ctt.MemberAccount}
	}
	f.cloud.PutInstance(member("i-0c1c2c3c4c5c6c7c8", lambdatest.Region, "198.51.100.150"))
	f.cloud.PutInstance(member("i-0d1d2d3d4d5d6d7d8", euWest, "198.51.100.151"))
	throttled := member("i-0e1e2e3e4e5e6e7e9", lambdatest.Region, "198.51.100.170")
	throttled.Account = memberThrottle
	f.cloud.PutInstance(throttled)
	f.fn = lambdatest.Start(t, lambdatest.BuildBootstrap(t, detectorPkg), env)

	send := func(e ctt.Event) *lambdatest.ErrorPayload {
		t.Helper()
		_, fnErr := f.invoke(t, ctt.EventBridge(e.JSON()))
		return fnErr
	}
	inAccount := func(e ctt.Event, account string) ctt.Event {
		e.Identity = e.Identity.InAccount(account)
		e.RecipientAccount = account
		return e
	}
	ok := []ctt.Event{
		memberCall("i-0c1c2c3c4c5c6c7c8", lambdatest.Region, "198.51.100.150", 1),
		memberCall("i-0d1d2d3d4d5d6d7d8", euWest, "198.51.100.151", 2),
		memberCall("i-0d1d2d3d4d5d6d7d8", "us-east-1", "198.51.100.151", 3), // a global call of the eu-west-1 instance
		instanceCall(ctt.InstanceID, lambdatest.Region, ctt.PublicIP, 4),    // the detector's own account
	}
	for _, e := range ok {
		if fnErr := send(e); fnErr != nil {
			t.Fatalf("%s: %s %s", e.EventID, fnErr.ErrorType, fnErr.ErrorMessage)
		}
	}
	if a := f.alerts(t); len(a) != 0 {
		t.Fatalf("alerts for legitimate calls: %v", a)
	}
	t.Run("a member's instance used from elsewhere is a BadSource naming the member account and the regions", func(t *testing.T) {
		if fnErr := send(memberCall("i-0d1d2d3d4d5d6d7d8", lambdatest.Region, ctt.AttackerIP, 5)); fnErr != nil {
			t.Fatal(fnErr.ErrorMessage)
		}
		a := f.alerts(t)
		if len(a) != 1 || a[0]["type"] != "BadSource" || a[0]["account"] != ctt.MemberAccount || a[0]["region"] != lambdatest.Region ||
			a[0]["instance_region"] != euWest || a[0]["instance_id"] != "i-0d1d2d3d4d5d6d7d8" {
			t.Errorf("alerts %v", a)
		}
	})
	t.Run("a member without its stack raises one AccountNotCovered alert", func(t *testing.T) {
		for i := range 2 {
			if fnErr := send(inAccount(instanceCall("i-0f0f0f0f0f0f0f0f0", lambdatest.Region, "198.51.100.180", 10+i), memberNoStack)); fnErr != nil {
				t.Fatal(fnErr.ErrorMessage)
			}
		}
		a := f.alerts(t)
		if len(a) != 2 || a[1]["type"] != "AccountNotCovered" || a[1]["account"] != memberNoStack || a[1]["uniq_id"] != memberNoStack+"-AccountNotCovered" {
			t.Errorf("alerts %v", a)
		}
	})
	t.Run("a throttled AssumeRole leaves the event to Lambda's retry, which decides it", func(t *testing.T) {
		// The SDK retries STS throttling twice itself: three in a row fail the call.
		f.cloud.STS.InjectFaults("AssumeRole", lambdatest.Repeat(3, f.cloud.STS.Throttle())...)
		e := inAccount(instanceCall(throttled.ID, lambdatest.Region, ctt.AttackerIP, 20), memberThrottle)
		if fnErr := send(e); fnErr == nil || fnErr.ErrorType != ErrTypeUndecided {
			t.Fatalf("function error %+v, want %s", fnErr, ErrTypeUndecided)
		}
		// Lambda's retry comes a minute later; the failure is remembered
		// for a second.
		time.Sleep(1100 * time.Millisecond)
		if fnErr := send(e); fnErr != nil {
			t.Fatalf("the retry: %s", fnErr.ErrorMessage)
		}
		a := f.alerts(t)
		if last := a[len(a)-1]; last["type"] != "BadSource" || last["account"] != memberThrottle {
			t.Errorf("alert after the retry %v", last)
		}
	})
	t.Run("one AssumeRole per member account, of its member role", func(t *testing.T) {
		by := map[string]int{}
		for _, c := range f.cloud.STS.Calls("AssumeRole") {
			arn := c.Form.Get("RoleArn")
			if !strings.HasSuffix(arn, ":role/"+memberRole) || c.Form.Get("RoleSessionName") != "defenders-detector" {
				t.Errorf("AssumeRole of %s as %s", arn, c.Form.Get("RoleSessionName"))
			}
			if c.ErrorCode == "" || c.ErrorCode == "AccessDenied" {
				by[strings.Split(arn, ":")[4]]++
			}
		}
		if by[ctt.MemberAccount] != 1 || by[memberNoStack] != 1 || by[memberThrottle] != 1 {
			t.Errorf("answered AssumeRole calls per account %v, want 1 each", by)
		}
	})
	t.Run("member instances are described with the member's session, the detector's own with its own credentials", func(t *testing.T) {
		for _, c := range f.cloud.EC2.Calls("DescribeInstances") {
			req := &lambdatest.Request{Form: c.Form}
			ids := filterValues(req, "instance-id")
			own := lambdatest.MemberAccount(c.AccessKeyID) == ""
			for _, id := range ids {
				if id == ctt.InstanceID && !own {
					t.Errorf("the detector's instance asked with a member's session %s", c.AccessKeyID)
				}
				if strings.HasPrefix(id, "i-0c1c") || strings.HasPrefix(id, "i-0d1d") {
					if lambdatest.MemberAccount(c.AccessKeyID) != ctt.MemberAccount {
						t.Errorf("member instance %s asked with key %s", id, c.AccessKeyID)
					}
				}
			}
		}
	})
	t.Run("the metrics carry the account as a property and give alerting accounts their dimension", func(t *testing.T) {
		var dimensioned, props []string
		for _, l := range f.fn.StdoutLines() {
			if !strings.Contains(l, `"_aws"`) {
				continue
			}
			var r struct {
				Account string
				AWS     struct {
					CloudWatchMetrics []struct{ Dimensions [][]string }
				} `json:"_aws"`
			}
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatal(err)
			}
			if d := r.AWS.CloudWatchMetrics[0].Dimensions; len(d) == 1 && len(d[0]) == 1 && d[0][0] == "Account" {
				dimensioned = append(dimensioned, r.Account)
			} else if r.Account != "" {
				props = append(props, r.Account)
			}
		}
		if strings.Join(dimensioned, ",") != strings.Join([]string{ctt.MemberAccount, memberNoStack, memberThrottle}, ",") {
			t.Errorf("dimensioned records for %v, want the three alerting accounts in order", dimensioned)
		}
		if len(props) < len(ok) {
			t.Errorf("only %d records name their account: %v", len(props), props)
		}
	})
}

// TestTheCentralDetectorUnderLockdown: the locked session may not call
// sts:AssumeRole, so member sessions are assumed with the function's own
// credentials, with the lockdown's session policy for the function's
// address: they are locked too.
func TestTheCentralDetectorUnderLockdown(t *testing.T) {
	checkip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "198.51.100.5\n") }))
	defer checkip.Close()
	f, env := fakeAWS(t)
	env[EnvOrganizationID] = "o-a1b2c3d4e5"
	env[EnvMemberRoleName] = memberRole
	env[EnvLockdown] = "true"
	env["DEFENDERS_CHECKIP_URL"] = checkip.URL
	env[EnvSelfRoleARN] = lambdatest.FunctionRoleARN
	f.cloud.AddMember(ctt.MemberAccount, memberRole)
	f.cloud.PutInstance(lambdatest.Instance{ID: "i-0c1c2c3c4c5c6c7c8", State: "running", VPC: "vpc-0707070707070707a", PrivateIP: "10.7.0.5",
		PublicIP: "198.51.100.150", Account: ctt.MemberAccount})
	f.fn = lambdatest.Start(t, lambdatest.BuildBootstrap(t, detectorPkg), env)
	if _, fnErr := f.invoke(t, ctt.EventBridge(memberCall("i-0c1c2c3c4c5c6c7c8", lambdatest.Region, ctt.AttackerIP, 1).JSON())); fnErr != nil {
		t.Fatal(fnErr.ErrorMessage)
	}
	if a := f.alerts(t); len(a) != 1 || a[0]["account"] != ctt.MemberAccount {
		t.Fatalf("alerts %v", a)
	}
	var member []lambdatest.Call
	for _, c := range f.cloud.STS.Calls("AssumeRole") {
		if c.Form.Get("RoleArn") != lambdatest.FunctionRoleARN {
			member = append(member, c)
		}
	}
	if len(member) != 1 || member[0].AccessKeyID != lambdatest.FakeAccessKeyID ||
		!strings.Contains(member[0].Form.Get("Policy"), "198.51.100.5") || !strings.Contains(member[0].Form.Get("Policy"), "sts:AssumeRole") {
		t.Errorf("member AssumeRole calls %+v: want one, signed with the function's own key, with the lockdown session policy", member)
	}
	for _, c := range f.cloud.EC2.Calls("DescribeInstances") {
		if lambdatest.MemberAccount(c.AccessKeyID) != ctt.MemberAccount {
			t.Errorf("DescribeInstances signed with %s, want the member session", c.AccessKeyID)
		}
	}
	for _, c := range f.sns.Calls("") {
		if c.AccessKeyID != lambdatest.SessionAccessKeyID {
			t.Errorf("%s signed with %s, want the locked session", c.Action, c.AccessKeyID)
		}
	}
}
