package main

// Shipped-binary tests of the cold start: it fails closed.

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/lambdatest"
)

// TestSettingsFailClosed checks that a misconfigured function does not
// start.
func TestSettingsFailClosed(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"no topic", map[string]string{EnvTopicARN: ""}},
		{"no dead-letter queue", map[string]string{EnvDLQURL: ""}},
		{"bad dedupe window", map[string]string{EnvDedupeWindow: "an hour"}},
		{"bad lockdown flag", map[string]string{EnvLockdown: "yes please"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, tt.env)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, fnErr, err := f.fn.Invoke(ctx, ctt.EventBridge(ctt.StolenFromForeignIP.JSON())); err == nil {
				t.Fatalf("the function served an invocation (error %+v)", fnErr)
			}
			if !strings.Contains(f.fn.Stdout(), "init failed") {
				t.Errorf("no init failure logged: %s", f.fn.Stdout())
			}
		})
	}
}

// TestLockdown checks that DEFENDERS_LOCKDOWN locks the credentials at cold
// start and fails closed.
func TestLockdown(t *testing.T) {
	tests := []struct {
		name      string
		checkip   http.HandlerFunc
		wantStart bool
	}{
		{"locked", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "198.51.100.5\n") }, true},
		{"address lookup fails", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkip := httptest.NewServer(tt.checkip)
			defer checkip.Close()
			f := start(t, map[string]string{
				EnvLockdown:             "true",
				"DEFENDERS_CHECKIP_URL": checkip.URL,
				EnvSelfRoleARN:          lambdatest.FunctionRoleARN,
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			resp, fnErr, err := f.fn.Invoke(ctx, ctt.EventBridge(ctt.StolenFromForeignIP.JSON()))
			if !tt.wantStart {
				if err == nil {
					t.Fatalf("the function started unlocked: %s %+v", resp, fnErr)
				}
				return
			}
			if err != nil || fnErr != nil {
				t.Fatalf("invoke: %v %+v", err, fnErr)
			}
			assume := f.cloud.STS.Calls("AssumeRole")
			if len(assume) != 1 || assume[0].Form.Get("RoleArn") != lambdatest.FunctionRoleARN ||
				!strings.Contains(assume[0].Form.Get("Policy"), "198.51.100.5") {
				t.Fatalf("AssumeRole calls %+v", assume)
			}
			for _, c := range append(f.cloud.EC2.Calls(""), f.sns.Calls("")...) {
				if c.AccessKeyID != lambdatest.SessionAccessKeyID {
					t.Errorf("%s signed with %s, want the locked session", c.Action, c.AccessKeyID)
				}
			}
			if len(f.sns.Messages()) != 1 {
				t.Errorf("%d alerts published, want 1", len(f.sns.Messages()))
			}
		})
	}
}
