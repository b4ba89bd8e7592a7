package detectorfn

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
	"github.com/defenders-cdk/defenders/internal/lockpolicy"
	"github.com/defenders-cdk/defenders/internal/shadow"
	"github.com/defenders-cdk/defenders/internal/shadowrun"
)

// TestShadowModeReportsWhatTheProposalWouldDeny: with shadow mode on, the handler shows every
// judged record to the runner and writes its report at the end of the invocation, next to the
// alerts (which shadow mode never changes). The stolen calls come over the internet, so an
// endpoints-only lock would deny each of them, and the instance-public-ip lock (the instance
// calls from elsewhere) too.
func TestShadowModeReportsWhatTheProposalWouldDeny(t *testing.T) {
	for _, mode := range []lockpolicy.Mode{lockpolicy.ModeVPCEndpointsOnly, lockpolicy.ModeInstancePublicIP} {
		t.Run(string(mode), func(t *testing.T) {
			runner, err := shadowrun.New(shadowrun.Config{Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			snsAPI := &fakeSNS{}
			var out bytes.Buffer
			inst := detect.Instance{ID: ctt.InstanceID, VpcID: ctt.VpcID, PublicIPs: []netip.Addr{netip.MustParseAddr(ctt.PublicIP)}}
			h := &Handler{
				proc:   detect.NewProcessor(detect.StaticInventory{ctt.InstanceID: inst}, detect.Config{Shadow: runner}),
				pub:    &snsPublisher{api: snsAPI, topicARN: "arn:aws:sns:eu-west-1:1:t"},
				dlq:    &deadLetterQueue{api: &fakeSQS{}, url: "https://sqs.example/q", topicARN: "arn:aws:sns:eu-west-1:1:t"},
				retry:  detect.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond},
				log:    slog.New(slog.NewJSONHandler(&out, nil)),
				out:    &out,
				shadow: runner,
			}
			event, _ := stolenBatch(3)
			if _, err := h.Invoke(context.Background(), event); err != nil {
				t.Fatalf("Invoke: %v", err)
			}
			if len(snsAPI.in) != 3 {
				t.Errorf("%d alerts published, want 3: shadow mode must not change the alerts", len(snsAPI.in))
			}
			sum, err := shadow.ReadReports(&out)
			if err != nil {
				t.Fatalf("ReadReports: %v\n%s", err, out.String())
			}
			if sum.Calls != 3 || sum.WouldDeny != 3 {
				t.Errorf("shadow report: %d calls, %d would be denied; want 3 and 3", sum.Calls, sum.WouldDeny)
			}
		})
	}
}
