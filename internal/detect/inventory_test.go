package detect_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	ctt "github.com/defenders-cdk/defenders/internal/cloudtrail/cloudtrailtest"
	"github.com/defenders-cdk/defenders/internal/detect"
)

func newCache(src detect.Inventory, c *fakeClock, o detect.CacheOptions) *detect.CachedInventory {
	o.Now, o.Sleep = c.Now, c.Sleep
	return detect.NewCachedInventory(src, o)
}

func mustLookup(t *testing.T, inv detect.Inventory, id string) (detect.Instance, bool) {
	t.Helper()
	in, found, err := inv.Lookup(t.Context(), id)
	if err != nil {
		t.Fatalf("Lookup(%s): %v", id, err)
	}
	return in, found
}

func TestCachedInventoryServesFreshEntriesFromTheCache(t *testing.T) {
	clock := newClock()
	src := newSource(world())
	c := newCache(src, clock, detect.CacheOptions{TTL: 10 * time.Minute})
	mustLookup(t, c, ctt.InstanceID)
	clock.Advance(9 * time.Minute)
	if _, found := mustLookup(t, c, ctt.InstanceID); !found || src.count(ctt.InstanceID) != 1 {
		t.Fatalf("found %v after %d source calls, want found after 1", found, src.count(ctt.InstanceID))
	}
	t.Run("an entry older than the TTL is fetched again with the new data", func(t *testing.T) {
		moved := theInstance()
		moved.PublicIPs = addrs("198.51.100.200")
		src.set(ctt.InstanceID, moved)
		clock.Advance(time.Minute)
		in, _ := mustLookup(t, c, ctt.InstanceID)
		if src.count(ctt.InstanceID) != 2 || in.PublicIPs[0] != netip.MustParseAddr("198.51.100.200") {
			t.Errorf("%d calls, instance %+v", src.count(ctt.InstanceID), in)
		}
	})
	t.Run("the stats count the hit and the fetches", func(t *testing.T) {
		s := c.Stats()
		if s.Hits != 1 || s.Fetches != 2 || s.Entries != 1 {
			t.Errorf("stats = %+v", s)
		}
	})
}

func TestCachedInventoryLooksUpUnknownInstancesRightAway(t *testing.T) {
	clock := newClock()
	src := newSource(world())
	c := newCache(src, clock, detect.CacheOptions{MinRefreshInterval: 30 * time.Second})
	const fresh = "i-0000000000000beef"

	if _, found := mustLookup(t, c, fresh); found {
		t.Fatal("unknown instance found")
	}
	t.Run("a repeated miss within the refresh interval does not call the source", func(t *testing.T) {
		mustLookup(t, c, fresh)
		clock.Advance(29 * time.Second)
		if _, found := mustLookup(t, c, fresh); found || src.count(fresh) != 1 {
			t.Errorf("found %v after %d calls", found, src.count(fresh))
		}
	})
	t.Run("an instance launched meanwhile is found on the first miss after the interval", func(t *testing.T) {
		src.set(fresh, detect.Instance{ID: fresh})
		clock.Advance(time.Second)
		if _, found := mustLookup(t, c, fresh); !found || src.count(fresh) != 2 {
			t.Errorf("found %v after %d calls", found, src.count(fresh))
		}
	})
}

func TestCachedInventoryRateLimitsLookupsOfMadeUpIDs(t *testing.T) {
	clock := newClock()
	src := newSource(world())
	// Without waiting for tokens: every lookup beyond the budget is refused.
	c := newCache(src, clock, detect.CacheOptions{MissRate: 1, MissBurst: 3, MissMaxWait: -1})
	var throttled int
	for i := range 5 {
		_, _, err := c.Lookup(t.Context(), fmt.Sprintf("i-%08x", i))
		if errors.Is(err, detect.ErrThrottled) {
			throttled++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if throttled != 2 {
		t.Fatalf("throttled %d of 5 lookups with a burst of 3, want 2", throttled)
	}
	t.Run("the bucket refills at the configured rate", func(t *testing.T) {
		clock.Advance(time.Second)
		if _, _, err := c.Lookup(t.Context(), "i-0000000a"); err != nil {
			t.Errorf("first lookup after refill: %v", err)
		}
		if _, _, err := c.Lookup(t.Context(), "i-0000000b"); !errors.Is(err, detect.ErrThrottled) {
			t.Errorf("second lookup after refill: %v", err)
		}
	})
	t.Run("known instances are not affected by the limit", func(t *testing.T) {
		c2 := newCache(src, clock, detect.CacheOptions{MissRate: 1, MissBurst: 1, MissMaxWait: -1})
		mustLookup(t, c2, ctt.InstanceID)
		clock.Advance(11 * time.Minute) // expired, but known
		if _, _, err := c2.Lookup(t.Context(), "i-0000000c"); err != nil {
			t.Fatal(err)
		}
		if _, found := mustLookup(t, c2, ctt.InstanceID); !found {
			t.Error("expired known instance was throttled")
		}
	})
}

func TestCachedInventoryWhenTheSourceFails(t *testing.T) {
	t.Run("an expired entry is served stale up to MaxStale", func(t *testing.T) {
		clock := newClock()
		src := newSource(world())
		c := newCache(src, clock, detect.CacheOptions{TTL: 10 * time.Minute, MaxStale: time.Hour})
		mustLookup(t, c, ctt.InstanceID)
		src.fail(errEC2)
		clock.Advance(30 * time.Minute)
		if _, found := mustLookup(t, c, ctt.InstanceID); !found || c.Stats().StaleServed != 1 {
			t.Fatalf("stale entry not served: %+v", c.Stats())
		}
		clock.Advance(31 * time.Minute)
		if _, _, err := c.Lookup(t.Context(), ctt.InstanceID); !errors.Is(err, errEC2) {
			t.Errorf("after MaxStale: err = %v, want the source error", err)
		}
	})
	t.Run("a failed lookup of an unknown id is an error, never not-found", func(t *testing.T) {
		clock := newClock()
		src := newSource(world())
		src.fail(errEC2)
		c := newCache(src, clock, detect.CacheOptions{})
		for i := range 2 {
			if _, found, err := c.Lookup(t.Context(), ctt.InstanceID); !errors.Is(err, errEC2) || found {
				t.Fatalf("lookup %d: found %v, err %v", i, found, err)
			}
		}
		if src.count(ctt.InstanceID) != 1 {
			t.Errorf("failing source called %d times within the refresh interval", src.count(ctt.InstanceID))
		}
		src.fail(nil)
		clock.Advance(detect.DefaultMinRefreshInterval)
		if _, found := mustLookup(t, c, ctt.InstanceID); !found {
			t.Error("not found after the source recovered")
		}
	})
}

func TestCachedInventoryRefresh(t *testing.T) {
	clock := newClock()
	src := newSource(world())
	c := newCache(src, clock, detect.CacheOptions{MinRefreshInterval: 30 * time.Second})
	mustLookup(t, c, ctt.InstanceID)
	t.Run("a refresh right after a fetch is answered from the cache", func(t *testing.T) {
		if _, _, err := c.Refresh(t.Context(), ctt.InstanceID); err != nil || src.count(ctt.InstanceID) != 1 {
			t.Errorf("err %v, %d calls", err, src.count(ctt.InstanceID))
		}
	})
	t.Run("a refresh after the interval calls the source despite a fresh entry", func(t *testing.T) {
		clock.Advance(time.Minute)
		if _, _, err := c.Refresh(t.Context(), ctt.InstanceID); err != nil || src.count(ctt.InstanceID) != 2 {
			t.Errorf("err %v, %d calls", err, src.count(ctt.InstanceID))
		}
	})
}

func TestCachedInventoryCoalescesConcurrentLookups(t *testing.T) {
	src := newSource(world())
	src.gate = make(chan struct{})
	src.entered = make(chan string, 100)
	c := detect.NewCachedInventory(src, detect.CacheOptions{})
	var wg sync.WaitGroup
	results := make(chan bool, 10)
	for range 10 {
		wg.Go(func() {
			_, found, err := c.Lookup(context.Background(), ctt.InstanceID)
			results <- found && err == nil
		})
	}
	<-src.entered
	time.Sleep(10 * time.Millisecond) // let the others queue up behind the first
	close(src.gate)
	wg.Wait()
	close(results)
	for ok := range results {
		if !ok {
			t.Error("a coalesced lookup failed")
		}
	}
	if n := src.count(ctt.InstanceID); n != 1 {
		t.Errorf("source called %d times for concurrent lookups of one id", n)
	}
	t.Run("a waiter whose context ends gives up", func(t *testing.T) {
		src := newSource(world())
		src.gate = make(chan struct{})
		src.entered = make(chan string, 1)
		c := detect.NewCachedInventory(src, detect.CacheOptions{})
		go func() { _, _, _ = c.Lookup(context.Background(), ctt.InstanceID) }()
		<-src.entered
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := c.Lookup(ctx, ctt.InstanceID); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
		close(src.gate)
	})
}

func TestCachedInventoryEvictsLeastRecentlyUsed(t *testing.T) {
	clock := newClock()
	src := newSource(map[string]detect.Instance{"i-0000000a": {}, "i-0000000b": {}, "i-0000000c": {}})
	c := newCache(src, clock, detect.CacheOptions{MaxEntries: 2})
	for _, id := range []string{"i-0000000a", "i-0000000b", "i-0000000a", "i-0000000c", "i-0000000a", "i-0000000b"} {
		mustLookup(t, c, id)
	}
	if src.count("i-0000000a") != 1 || src.count("i-0000000b") != 2 || c.Stats().Evictions != 2 {
		t.Errorf("calls a=%d b=%d, stats %+v", src.count("i-0000000a"), src.count("i-0000000b"), c.Stats())
	}
}

func TestCachedInventoryPrefetch(t *testing.T) {
	ids := []string{ctt.InstanceID, ctt.OldInstanceID, ctt.InstanceID, ctt.UnknownInstance}
	t.Run("a bulk source fills a cold cache in one call", func(t *testing.T) {
		src := bulkSource{newSource(world())}
		c := detect.NewCachedInventory(src, detect.CacheOptions{})
		c.Prefetch(t.Context(), ids)
		for _, id := range ids {
			_, found := mustLookup(t, c, id)
			if found != (id != ctt.UnknownInstance) {
				t.Errorf("%s: found %v", id, found)
			}
		}
		if src.bulkCalls != 1 || src.count(ctt.InstanceID) != 1 {
			t.Errorf("bulk calls %d, calls for the instance %d", src.bulkCalls, src.count(ctt.InstanceID))
		}
	})
	t.Run("a plain source is asked once per instance", func(t *testing.T) {
		src := newSource(world())
		c := detect.NewCachedInventory(src, detect.CacheOptions{PrefetchWorkers: 2})
		c.Prefetch(t.Context(), ids)
		c.Prefetch(t.Context(), ids) // everything is fresh now
		for _, id := range ids {
			mustLookup(t, c, id)
			if src.count(id) != 1 {
				t.Errorf("%s asked %d times", id, src.count(id))
			}
		}
	})
	t.Run("a failed bulk call surfaces on lookup", func(t *testing.T) {
		src := bulkSource{newSource(world())}
		src.fail(errEC2)
		c := detect.NewCachedInventory(src, detect.CacheOptions{})
		c.Prefetch(t.Context(), ids)
		if _, _, err := c.Lookup(t.Context(), ctt.InstanceID); !errors.Is(err, errEC2) {
			t.Errorf("err = %v", err)
		}
		if s := c.Stats(); s.PrefetchErrors != 1 || s.BulkLookups != 1 {
			t.Errorf("stats = %+v", s)
		}
	})
}

func TestStaticInventory(t *testing.T) {
	inv := world()
	t.Run("a stored instance is found", func(t *testing.T) {
		if _, found := mustLookup(t, inv, ctt.InstanceID); !found {
			t.Error("not found")
		}
	})
	t.Run("bulk lookups return only stored instances", func(t *testing.T) {
		m, err := inv.LookupMany(t.Context(), []string{ctt.InstanceID, ctt.UnknownInstance})
		if err != nil || len(m) != 1 {
			t.Errorf("%v, %v", m, err)
		}
	})
	t.Run("an InventoryFunc is an Inventory", func(t *testing.T) {
		var f detect.Inventory = detect.InventoryFunc(func(context.Context, string) (detect.Instance, bool, error) {
			return detect.Instance{}, true, nil
		})
		if _, found := mustLookup(t, f, "x"); !found {
			t.Error("not found")
		}
	})
}

func TestCachedInventoryPrefetchChargesTheMissLimitPerCall(t *testing.T) {
	data := map[string]detect.Instance{}
	var ids []string
	for i := range 300 {
		id := fmt.Sprintf("i-%08x", i)
		data[id] = detect.Instance{ID: id}
		ids = append(ids, id)
	}
	t.Run("a cold bulk prefetch of 300 instances costs two tokens", func(t *testing.T) {
		src := bulkSource{newSource(data)}
		c := detect.NewCachedInventory(src, detect.CacheOptions{MissRate: 1, MissBurst: 2})
		c.Prefetch(t.Context(), ids)
		for _, id := range ids {
			if _, found := mustLookup(t, c, id); !found {
				t.Fatalf("%s not found", id)
			}
		}
		if src.bulkCalls != 2 || c.Stats().Throttled != 0 {
			t.Errorf("bulk calls %d, stats %+v", src.bulkCalls, c.Stats())
		}
	})
	t.Run("a plain prefetch is charged per instance", func(t *testing.T) {
		src := newSource(data)
		c := detect.NewCachedInventory(src, detect.CacheOptions{MissRate: 1, MissBurst: 5, MissMaxWait: -1})
		c.Prefetch(t.Context(), ids[:10])
		if s := c.Stats(); s.Fetches != 5 || s.Throttled != 5 {
			t.Errorf("stats %+v", s)
		}
	})
}
