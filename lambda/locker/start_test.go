package main

// Shipped-binary tests of the cold start: the lockdown, and a start that
// fails closed.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

// checkip serves a fixed egress address, as checkip.amazonaws.com would.
func checkip(t *testing.T, addr *string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if *addr == "" {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, *addr)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestLockdown(t *testing.T) {
	lockdownEnv := func(url string) map[string]string {
		return map[string]string{
			"DEFENDERS_LOCKDOWN":    "true",
			"DEFENDERS_ROLE_ARN":    lambdatest.FunctionRoleARN,
			"DEFENDERS_CHECKIP_URL": url,
		}
	}

	t.Run("with lockdown every EC2, IAM and CloudFormation call uses the locked session", func(t *testing.T) {
		c := newCloud(t)
		addr := "54.99.0.1"
		f := startLocker(t, c, lockdownEnv(checkip(t, &addr)))
		mustSucceed(t, f, stateChange(t, web1, "running"))
		assumes := c.STS.Calls("AssumeRole")
		if len(assumes) != 1 || assumes[0].AccessKeyID != lambdatest.FakeAccessKeyID ||
			assumes[0].Form.Get("RoleArn") != lambdatest.FunctionRoleARN || !strings.Contains(assumes[0].Form.Get("Policy"), "54.99.0.1") {
			t.Fatalf("AssumeRole calls %+v, want one from the function's own credentials with a session policy on 54.99.0.1", assumes)
		}
		all := calls(c)
		if len(all) == 0 || c.CloudFormation.Count("") == 0 {
			t.Fatalf("%d calls, %d of them CloudFormation: want some of each", len(all), c.CloudFormation.Count(""))
		}
		for _, call := range all {
			if call.AccessKeyID != lambdatest.SessionAccessKeyID {
				t.Errorf("%s was signed with %s, not the locked session", call.Action, call.AccessKeyID)
			}
		}
		if lg, _ := last(t, f); lg.Lockdown == nil || lg.Lockdown.Address != "54.99.0.1/32" {
			t.Errorf("log line lockdown %+v", lg.Lockdown)
		}
	})

	t.Run("when the lockdown fails the start fails, nothing is called, and the next start succeeds", func(t *testing.T) {
		c := newCloud(t)
		addr := ""
		url := checkip(t, &addr)
		f := startLocker(t, c, lockdownEnv(url))
		mustNotStart(t, f, stateChange(t, web1, "running"))
		if n := len(calls(c)) + c.STS.Count("AssumeRole"); n != 0 {
			t.Errorf("%d AWS calls while the lockdown failed", n)
		}
		// Lambda starts a new execution environment for the next invocation.
		addr = "54.99.0.2"
		f = startLocker(t, c, lockdownEnv(url))
		mustSucceed(t, f, stateChange(t, web1, "running"))
		for _, call := range calls(c) {
			if call.AccessKeyID != lambdatest.SessionAccessKeyID {
				t.Errorf("%s was signed with %s, not the locked session", call.Action, call.AccessKeyID)
			}
		}
	})

	t.Run("when STS refuses the locked session nothing runs", func(t *testing.T) {
		c := newCloud(t)
		addr := "54.99.0.3"
		c.STS.InjectFaults("AssumeRole", lambdatest.Repeat(20, lambdatest.Errorf(http.StatusForbidden, "AccessDenied", "not authorized to perform sts:AssumeRole"))...)
		f := startLocker(t, c, lockdownEnv(checkip(t, &addr)))
		mustNotStart(t, f, stateChange(t, web1, "running"))
		if !strings.Contains(f.Stdout(), "AccessDenied") {
			t.Fatalf("the failed start does not say AccessDenied: %s", f.Stdout())
		}
		if n := len(calls(c)); n != 0 {
			t.Errorf("%d EC2, IAM and CloudFormation calls without a locked session", n)
		}
	})

	tests := []struct {
		name string
		env  map[string]string
	}{
		{"a mistyped DEFENDERS_LOCKDOWN fails closed", map[string]string{"DEFENDERS_LOCKDOWN": "yes"}},
		{"a role path of every role fails closed", map[string]string{"DEFENDERS_ROLE_PATH": "/"}},
		{"a role path without slashes fails closed", map[string]string{"DEFENDERS_ROLE_PATH": "defenders"}},
		{"an invalid policy name fails closed", map[string]string{"DEFENDERS_POLICY_NAME": "no spaces allowed"}},
		{"an invalid lockdown option fails closed", map[string]string{"DEFENDERS_LOCKDOWN": "true", "DEFENDERS_ROLE_ARN": "not-an-arn"}},
		{"a private trusted egress prefix fails closed", map[string]string{"DEFENDERS_TRUSTED_EGRESS_PREFIXES": "10.0.0.0/8"}},
		{"a malformed shared VPC endpoint fails closed", map[string]string{"DEFENDERS_SHARED_VPC_ENDPOINTS": "vpce-nope"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCloud(t)
			f := startLocker(t, c, tc.env)
			mustNotStart(t, f, stateChange(t, web1, "running"))
			if n := len(calls(c)) + c.STS.Count(""); n != 0 {
				t.Errorf("%d AWS calls", n)
			}
		})
	}
}
