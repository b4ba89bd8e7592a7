package main

// Shipped-binary tests of AWS faults: retried, or failing the invocation.

import (
	"net/http"
	"strings"
	"testing"

	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

func TestTransientErrorsAreRetried(t *testing.T) {
	tests := []struct {
		name    string
		inject  func(c *lambdatest.Cloud)
		service func(c *lambdatest.Cloud) *lambdatest.Service
		action  string
		faults  int
	}{
		{"IAM throttling of the write is retried until the lock is written",
			func(c *lambdatest.Cloud) {
				c.IAM.InjectFaults("PutRolePolicy", lambdatest.Repeat(3, c.IAM.Throttle())...)
			},
			func(c *lambdatest.Cloud) *lambdatest.Service { return c.IAM }, "PutRolePolicy", 3},
		{"IAM server errors on the reads are retried until the lock is written",
			func(c *lambdatest.Cloud) {
				c.IAM.InjectFaults("GetInstanceProfile", lambdatest.Repeat(2, c.IAM.ServerError())...)
			},
			func(c *lambdatest.Cloud) *lambdatest.Service { return c.IAM }, "GetInstanceProfile", 2},
		{"IAM throttling then a server error on the write are retried",
			func(c *lambdatest.Cloud) {
				c.IAM.InjectFaults("PutRolePolicy", c.IAM.Throttle(), c.IAM.Throttle(), c.IAM.ServerError())
			},
			func(c *lambdatest.Cloud) *lambdatest.Service { return c.IAM }, "PutRolePolicy", 3},
		{"EC2 RequestLimitExceeded is retried until the lock is written",
			func(c *lambdatest.Cloud) {
				c.EC2.InjectFaults("DescribeInstances", lambdatest.Repeat(2, c.EC2.Throttle())...)
			},
			func(c *lambdatest.Cloud) *lambdatest.Service { return c.EC2 }, "DescribeInstances", 2},
		{"CloudFormation throttling of the stack look-up is retried until the lock is written",
			func(c *lambdatest.Cloud) {
				c.CloudFormation.InjectFaults("DescribeStackResources", c.CloudFormation.Throttle(), c.CloudFormation.ServerError())
				c.CloudFormation.InjectFaults("DescribeStacks", c.CloudFormation.Throttle())
			},
			func(c *lambdatest.Cloud) *lambdatest.Service { return c.CloudFormation }, "", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCloud(t)
			f := startLocker(t, c, nil)
			tc.inject(c)
			s := mustSucceed(t, f, stateChange(t, web1, "running"))
			if s.Written != 1 {
				t.Errorf("summary %+v, want the lock written", s)
			}
			ips, _ := lastLock(t, c, webRole)
			wantList(t, "aws:SourceIp", ips, "54.10.20.30/32")
			failed := 0
			for _, call := range tc.service(c).Calls(tc.action) {
				if call.ErrorCode != "" {
					failed++
				}
			}
			if failed != tc.faults {
				t.Errorf("%d failed %s calls, want %d", failed, tc.action, tc.faults)
			}
			lg, _ := last(t, f)
			if lg.Retries != tc.faults {
				t.Errorf("the log line reports %d retries, want %d", lg.Retries, tc.faults)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	t.Run("garbage events get error responses and the process keeps serving", func(t *testing.T) {
		c := newCloud(t)
		f := startLocker(t, c, nil)
		bad := []struct {
			payload  string
			wantType string
		}{
			{`not json at all`, errorTypeInvalidEvent},
			{`{}`, errorTypeInvalidEvent},
			{`{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{"instance-id":"x","state":"running"}}`, errorTypeInvalidEvent},
			{`{"detail-type":"Object Created","source":"aws.s3","detail":{}}`, errorTypeUnsupportedEvent},
		}
		for _, b := range bad {
			_, fnErr := invoke(t, f, []byte(b.payload))
			if fnErr == nil || fnErr.ErrorType != b.wantType {
				t.Errorf("event %s: error %+v, want %s", b.payload, fnErr, b.wantType)
			}
		}
		if n := len(calls(c)); n != 0 {
			t.Errorf("garbage events made %d API calls", n)
		}
		mustSucceed(t, f, stateChange(t, web1, "running"))
		if exited, err := f.Exited(); exited {
			t.Errorf("the process exited: %v", err)
		}
		logs, metrics := output(t, f)
		if len(logs) != len(bad)+1 || len(metrics) != len(bad)+1 {
			t.Errorf("%d log lines and %d metrics lines for %d invocations", len(logs), len(metrics), len(bad)+1)
		}
		for i := range bad {
			if logs[i].Level != "ERROR" || logs[i].Error == "" || metrics[i].Errors != 1 {
				t.Errorf("invocation %d: log %+v, Errors metric %v", i, logs[i], metrics[i].Errors)
			}
		}
	})

	t.Run("a role that cannot be written fails the invocation", func(t *testing.T) {
		c := newCloud(t)
		c.LimitWrites("/nothing/")
		f := startLocker(t, c, nil)
		_, fnErr := invoke(t, f, stateChange(t, web1, "running"))
		if fnErr == nil || fnErr.ErrorType != errorTypeRoleFailed || !strings.Contains(fnErr.ErrorMessage, "AccessDenied") {
			t.Fatalf("error %+v, want %s with AccessDenied", fnErr, errorTypeRoleFailed)
		}
		lg, m := last(t, f)
		if lg.Level != "ERROR" || m.Errors != 1 || m.LocksWritten != 0 {
			t.Errorf("log level %s, Errors %v, LocksWritten %v", lg.Level, m.Errors, m.LocksWritten)
		}
	})

	t.Run("a CloudFormation error fails the role and writes nothing", func(t *testing.T) {
		c := newCloud(t)
		c.CloudFormation.InjectFaults("DescribeStackResources",
			lambdatest.Errorf(http.StatusForbidden, "AccessDenied", "not authorized to perform: cloudformation:DescribeStackResources"))
		f := startLocker(t, c, nil)
		_, fnErr := invoke(t, f, stateChange(t, web1, "running"))
		if fnErr == nil || fnErr.ErrorType != errorTypeRoleFailed || !strings.Contains(fnErr.ErrorMessage, "AccessDenied") ||
			!strings.Contains(fnErr.ErrorMessage, "CloudFormation stack of role "+webRole) {
			t.Fatalf("error %+v, want %s with AccessDenied on the stack look-up", fnErr, errorTypeRoleFailed)
		}
		if n := len(puts(c, webRole)); n != 0 {
			t.Errorf("%d PutRolePolicy calls after a CloudFormation error", n)
		}
		lg, m := last(t, f)
		if lg.Level != "ERROR" || m.Errors != 1 || m.LocksWritten != 0 || m.LocksSkipped != 0 {
			t.Errorf("log level %s, Errors %v, LocksWritten %v, LocksSkipped %v", lg.Level, m.Errors, m.LocksWritten, m.LocksSkipped)
		}
	})

	t.Run("a lock that does not fit is a fallback with a FallbackLocks metric", func(t *testing.T) {
		c := newCloud(t)
		// An inline policy that leaves less than the exact lock needs but
		// more than the VPC-endpoints-only lock.
		pad := 9000 - len(`{"Version":"2012-10-17","Statement":[{"Sid":"Filler","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/"}]}`)
		c.SetRolePolicy(webRole, "app", `{"Version":"2012-10-17","Statement":[{"Sid":"Filler","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/`+
			strings.Repeat("k", pad)+`"}]}`)
		f := startLocker(t, c, nil)
		s := mustSucceed(t, f, stateChange(t, web1, "running"))
		if s.Fallback != 1 || s.Written != 1 {
			t.Errorf("summary %+v, want one fallback lock written", s)
		}
		ips, vpcs := lastLock(t, c, webRole)
		wantList(t, "aws:SourceIp", ips)
		wantList(t, "aws:SourceVpc", vpcs, vpcID)
		lg, m := last(t, f)
		if m.FallbackLocks != 1 || lg.Level != "WARN" {
			t.Errorf("FallbackLocks %v, log level %s", m.FallbackLocks, lg.Level)
		}
	})
}
