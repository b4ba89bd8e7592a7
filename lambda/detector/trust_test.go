package main

// Shipped-binary tests of the app's trust: the trusted egress prefixes and
// shared VPC endpoints the construct passes in the environment.

import (
	"context"
	"strings"
	"testing"
	"time"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
)

// Trust of the fixture app: a central egress NAT reached over Transit
// Gateway, and an interface endpoint of a shared-services VPC of another
// account.
const (
	trustedEgress   = "192.0.2.128/25"
	trustedEgressIP = "192.0.2.200"
	sharedEndpoint  = "vpce-0badc0ffee0123456"
)

// TestTrustIsHonoured checks that a call from a trusted egress prefix and
// one from the instance's own private address through a shared endpoint
// are OK, while another host through the shared endpoint, and the
// attacker, are still alerted.
func TestTrustIsHonoured(t *testing.T) {
	f := start(t, map[string]string{
		EnvTrustedEgressPrefixes: trustedEgress,
		EnvSharedVPCEndpoints:    sharedEndpoint,
	})
	call := func(source, endpoint string) ctt.Event {
		e := ctt.InstanceFromPublicIP.Build()
		e.SourceIP, e.VPCEndpointID = source, endpoint
		if endpoint != "" {
			e.VPCEndpointAccountID, e.Version = ctt.OtherAccount, "1.10"
		}
		return e
	}
	tests := []struct {
		name     string
		event    ctt.Event
		severity string // "" for no alert
	}{
		{"a call through the trusted egress is OK", call(trustedEgressIP, ""), ""},
		{"the instance's own private address through the shared endpoint is OK", call(ctt.PrivateIP, sharedEndpoint), ""},
		{"another host through the shared endpoint is alerted", call(ctt.OtherPrivateIP, sharedEndpoint), "MEDIUM"},
		{"the attacker is still alerted", call(ctt.AttackerIP, ""), "HIGH"},
		{"an address next to the trusted prefix is alerted", call("192.0.2.127", ""), "HIGH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.sns.Messages())
			f.invokeOK(t, ctt.EventBridge(tt.event.JSON()))
			msgs := f.sns.Messages()[before:]
			switch {
			case tt.severity == "" && len(msgs) != 0:
				t.Errorf("alerted: %s", msgs[0].Message)
			case tt.severity != "" && len(msgs) != 1:
				t.Errorf("%d alerts, want 1", len(msgs))
			case tt.severity != "" && msgs[0].Attributes["severity"] != tt.severity:
				t.Errorf("alert attributes %v, want severity %s", msgs[0].Attributes, tt.severity)
			}
		})
	}
}

// TestABadTrustFailsTheStart checks that a malformed trust variable stops
// the function instead of being ignored.
func TestABadTrustFailsTheStart(t *testing.T) {
	for _, env := range []map[string]string{
		{EnvTrustedEgressPrefixes: "10.0.0.0/8"}, // private: not an egress address
		{EnvSharedVPCEndpoints: "vpc-0123456789abcdef0"},
	} {
		f := start(t, env)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, fnErr, err := f.fn.Invoke(ctx, ctt.EventBridge(ctt.StolenFromForeignIP.JSON())); err == nil {
			t.Fatalf("%v: the function served an invocation (error %+v)", env, fnErr)
		}
		for k := range env {
			if !containsLine(f.fn.StdoutLines(), "init failed", k) {
				t.Errorf("%v: no init failure naming %s: %s", env, k, f.fn.Stdout())
			}
		}
	}
}

// containsLine reports whether a line contains every one of subs.
func containsLine(lines []string, subs ...string) bool {
	for _, l := range lines {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			return true
		}
	}
	return false
}
