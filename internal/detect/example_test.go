package detect_test

import (
	"context"
	"fmt"
	"time"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

// Example shows how the detector Lambda wires the packages together for a
// CloudWatch Logs subscription. In the Lambda, the inventory wraps the EC2
// API and the publisher wraps SNS; both are built once per container,
// outside the handler, so that the cache and the deduplicator persist
// between invocations.
func Example() {
	inv := detect.NewCachedInventory(world(), detect.CacheOptions{TTL: 10 * time.Minute})
	proc := detect.NewProcessor(inv, detect.Config{
		Self: detect.Self{RoleARNs: []string{ctt.DetectorRoleARN}},
	})
	sns := detect.PublisherFunc(func(_ context.Context, a detect.Alert) error {
		fmt.Printf("publish %s %s %s\n", a.Type, a.Severity, a.UniqID)
		return nil
	})

	handler := func(ctx context.Context, event []byte) error {
		var batch cloudtrail.Batch
		if err := new(cloudtrail.Decoder).DecodeCWLEvent(event, &batch); err != nil {
			return fmt.Errorf("decode: %w", err) // Lambda retries, then the on-failure destination
		}
		res := proc.ProcessBatch(ctx, &batch)
		for _, f := range proc.Publish(ctx, sns, res.Alerts, detect.RetryPolicy{}) {
			_ = f // send f.Alert to the dead-letter queue
		}
		if len(res.Undecided) > 0 {
			return fmt.Errorf("%d records undecided: %w", len(res.Undecided), res.Undecided[0].Err)
		}
		fmt.Printf("events=%d prefiltered=%d alerts=%d suppressed=%d\n",
			res.Stats.Events, res.Stats.Prefiltered, res.Stats.Alerts, res.Stats.Suppressed)
		return nil
	}

	event := ctt.CWLEvent(ctt.CWLPayload(
		ctt.InstanceFromPublicIP.JSON(),
		ctt.IAMUserCall.JSON(),
		ctt.StolenFromForeignIP.JSON(),
		ctt.StolenFailedCall.JSON(),
	))
	if err := handler(context.Background(), event); err != nil {
		fmt.Println(err)
	}
	// Output:
	// publish BadSource HIGH i-0a1b2c3d4e5f60718-203.0.113.66
	// events=4 prefiltered=1 alerts=1 suppressed=1
}
