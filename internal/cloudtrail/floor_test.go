package cloudtrail_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	floorct "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

// The decode floor. The deployed detector receives almost only instance
// sessions (the EventBridge rule and the subscription filter run before
// it), so the payload here is 1,000 records that are ALL instance-profile
// sessions of 50 instances (2% of them from an attacker's address), and
// the floor is the same payload through the Lambda event's JSON, base64,
// gunzip and the envelope alone (FloorCWLEvent, the decoder's own code). The
// product is the whole pipeline: decode every record, inventory (warm),
// decide, dedupe.

const floorEvents, floorInstances = 1000, 50

func floorEvent() []byte {
	return floorct.CWLEvent(floorct.CWLPayload(floorct.Mix(floorEvents, 1.0, floorInstances, 1)...))
}

func floorInventory() detect.Inventory {
	inv := detect.StaticInventory{}
	for k := range floorInstances {
		id := floorct.MixInstance(k)
		inv[id] = detect.Instance{
			ID: id, VpcID: floorct.VpcID,
			PublicIPs:      []netip.Addr{netip.MustParseAddr(floorct.MixInstanceIP(k))},
			NATIPs:         []netip.Addr{netip.MustParseAddr(floorct.NATIP)},
			PrivateIPs:     []netip.Addr{netip.MustParseAddr(fmt.Sprintf("10.0.3.%d", k))},
			VPCEndpointIDs: []string{floorct.OwnEndpoint},
		}
	}
	return detect.NewCachedInventory(inv, detect.CacheOptions{})
}

// product runs the detector's pipeline over one event.
type product struct {
	dec   cloudtrail.Decoder
	p     *detect.Processor
	batch cloudtrail.Batch
}

func newProduct() *product {
	return &product{p: detect.NewProcessor(floorInventory(), detect.Config{})}
}

func (pr *product) run(ctx context.Context, event []byte) (detect.Result, error) {
	pr.batch.Reset()
	if err := pr.dec.DecodeCWLEvent(event, &pr.batch); err != nil {
		return detect.Result{}, err
	}
	return pr.p.ProcessBatch(ctx, &pr.batch), nil
}

func TestTheFloorPayloadIsWhatItClaims(t *testing.T) {
	event := floorEvent()
	n, err := cloudtrail.FloorCWLEvent(event)
	if err != nil || n != floorEvents {
		t.Fatalf("floor: %d events, %v", n, err)
	}
	res, err := newProduct().run(t.Context(), event)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Events != floorEvents || res.Stats.InstanceSessions != floorEvents || res.Stats.Alerts == 0 || res.Stats.Undecided != 0 {
		t.Errorf("the payload is not all instance sessions with some alerts: %+v", res.Stats)
	}
}

func benchFloor(b *testing.B) {
	event := floorEvent()
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cloudtrail.FloorCWLEvent(event); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*floorEvents)/b.Elapsed().Seconds(), "events/s")
}

func benchProduct(b *testing.B) {
	event := floorEvent()
	pr := newProduct()
	ctx := context.Background()
	b.SetBytes(int64(len(event)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pr.run(ctx, event); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*floorEvents)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkInstanceSessions1000 measures the floor and the product on the
// same all-instance-session payload.
func BenchmarkInstanceSessions1000(b *testing.B) {
	b.Run("floor", benchFloor)
	b.Run("product", benchProduct)
}

// TestFigureDecodeFloor prints the product's throughput as a share of the
// floor's, medians of alternating runs in one process (make bench sets
// DEFENDERS_FIGURES=1; the target is 0.9).
func TestFigureDecodeFloor(t *testing.T) {
	if os.Getenv("DEFENDERS_FIGURES") == "" {
		t.Skip("a measurement: make bench runs it (DEFENDERS_FIGURES=1)")
	}
	var floor, prod []float64
	for range 7 {
		floor = append(floor, float64(testing.Benchmark(benchFloor).NsPerOp()))
		prod = append(prod, float64(testing.Benchmark(benchProduct).NsPerOp()))
	}
	slices.Sort(floor)
	slices.Sort(prod)
	f, p := floor[len(floor)/2], prod[len(prod)/2]
	t.Logf("decode floor, 1,000 instance sessions per event: floor %.2f ms, product %.2f ms; product at %.2fx the floor's throughput",
		f/1e6, p/1e6, f/p)
}
