package detect_test

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/defenders-cdk/defenders/internal/cloudtrail"
	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// theInstance is the canonical fixture instance.
func theInstance() detect.Instance {
	return detect.Instance{
		ID:             ctt.InstanceID,
		VpcID:          ctt.VpcID,
		PublicIPs:      addrs(ctt.PublicIP, ctt.ElasticIP, ctt.PublicIPv6),
		NATIPs:         addrs(ctt.NATIP),
		PrivateIPs:     addrs(ctt.PrivateIP),
		VPCEndpointIDs: []string{ctt.OwnEndpoint, "vpce-0s3gateway0000001"},
	}
}

// world is the inventory of the fixture account.
func world() detect.StaticInventory {
	return detect.StaticInventory{
		ctt.InstanceID: theInstance(),
		ctt.OldInstanceID: {
			ID:         ctt.OldInstanceID,
			VpcID:      "vpc-0ld",
			PublicIPs:  addrs("198.51.100.77"),
			PrivateIPs: addrs("10.0.2.44"),
		},
	}
}

// record decodes a fixture record.
func record(s ctt.Scenario) cloudtrail.Record {
	r, err := cloudtrail.ParseRecord(s.JSON())
	if err != nil {
		panic(err) // fixtures are valid by construction
	}
	return r
}

// fakeClock is a manually advanced clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2024, 5, 14, 10, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Sleep advances the clock by d: a wait costs simulated time only.
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var errEC2 = errors.New("ec2: RequestLimitExceeded")

// source is a scriptable Inventory that counts its calls.
type source struct {
	mu        sync.Mutex
	data      map[string]detect.Instance
	err       error
	calls     map[string]int
	bulkCalls int
	gate      chan struct{} // when set, lookups wait for it to close
	entered   chan string   // when set, lookups announce themselves
	delay     func()        // when set, called by every call (a latency on a fake clock)
	failures  int           // failed calls
	single    int           // Lookup calls
}

func newSource(data map[string]detect.Instance) *source {
	return &source{data: data, calls: map[string]int{}}
}

func (s *source) Lookup(ctx context.Context, id string) (detect.Instance, bool, error) {
	if s.entered != nil {
		s.entered <- id
	}
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return detect.Instance{}, false, ctx.Err()
		}
	}
	if s.delay != nil {
		s.delay()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[id]++
	s.single++
	if s.err != nil {
		s.failures++
		return detect.Instance{}, false, s.err
	}
	in, ok := s.data[id]
	return in, ok, nil
}

func (s *source) set(id string, in detect.Instance) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[id] = in
}

func (s *source) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

// total returns the calls made: single lookups and bulk calls.
func (s *source) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.single + s.bulkCalls
}

func (s *source) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

// bulkSource adds LookupMany to source.
type bulkSource struct{ *source }

func (b bulkSource) LookupMany(ctx context.Context, ids []string) (map[string]detect.Instance, error) {
	if b.delay != nil {
		b.delay()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bulkCalls++
	if b.err != nil {
		b.failures++
		return nil, b.err
	}
	out := map[string]detect.Instance{}
	for _, id := range ids {
		b.calls[id]++
		if in, ok := b.data[id]; ok {
			out[id] = in
		}
	}
	return out, nil
}
