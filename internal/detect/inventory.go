package detect

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Instance is what the inventory knows about one EC2 instance. Slices
// returned by an Inventory are shared and must be treated as read-only.
type Instance struct {
	ID    string // instance id
	VpcID string // the instance's VPC
	// Region is the region the instance lives in, "" when the inventory
	// does not say (a MultiRegionInventory always sets it).
	Region string
	// PublicIPs are the addresses the instance reaches AWS APIs from
	// directly: the public IPv4 addresses and Elastic IPs of all its network
	// interfaces, and their IPv6 addresses (ec2addr.Addresses.Public, what
	// the instance role's lock admits).
	PublicIPs []netip.Addr
	// PublicPrefixes are the public IPv6 prefixes delegated to the
	// instance's network interfaces, whose addresses the instance may call
	// from too (ec2addr.Addresses.PublicPrefixes, which the lock admits).
	PublicPrefixes []netip.Prefix
	// NATIPs are the public addresses of the NAT gateways in the instance's
	// VPC (the instance's traffic may leave through any of them).
	NATIPs []netip.Addr
	// PrivateIPs are the private addresses of all the instance's network
	// interfaces, including secondary addresses.
	PrivateIPs []netip.Addr
	// PrivatePrefixes are prefixes delegated to the instance's network
	// interfaces (EKS prefix delegation), whose addresses are the
	// instance's too.
	PrivatePrefixes []netip.Prefix
	// VPCEndpointIDs are the ids of the VPC endpoints (interface and
	// gateway) in the instance's VPC.
	VPCEndpointIDs []string
}

// HasPublicIP reports whether a is one of the instance's public addresses
// or inside one of its public delegated prefixes.
func (in *Instance) HasPublicIP(a netip.Addr) bool {
	a = a.Unmap()
	if slices.Contains(in.PublicIPs, a) {
		return true
	}
	for _, p := range in.PublicPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// HasPrivateIP reports whether a is one of the instance's private
// addresses or inside one of its delegated prefixes.
func (in *Instance) HasPrivateIP(a netip.Addr) bool {
	a = a.Unmap()
	if slices.Contains(in.PrivateIPs, a) {
		return true
	}
	for _, p := range in.PrivatePrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Inventory looks instances up. found is false (with a nil error) when the
// instance does not exist; err reports a failure to find out.
type Inventory interface {
	Lookup(ctx context.Context, instanceID string) (inst Instance, found bool, err error)
}

// InventoryFunc adapts a function to Inventory.
type InventoryFunc func(ctx context.Context, instanceID string) (Instance, bool, error)

// Lookup calls f.
func (f InventoryFunc) Lookup(ctx context.Context, instanceID string) (Instance, bool, error) {
	return f(ctx, instanceID)
}

// MaxBulkLookup is the largest number of ids CachedInventory passes to one
// LookupMany call (the EC2 API accepts up to 200 values per filter).
const MaxBulkLookup = 200

// BulkInventory is an Inventory that can look many instances up in one
// call (one DescribeInstances with an instance-id filter). Ids absent from
// the returned map do not exist. CachedInventory uses it, when its source
// implements it, to fill a cold cache with few API calls.
type BulkInventory interface {
	Inventory
	LookupMany(ctx context.Context, instanceIDs []string) (map[string]Instance, error)
}

// Refresher is an Inventory that can bypass its cache. The Processor
// re-checks a record that would raise an alert after a Refresh, so that an
// instance whose addresses changed since they were cached (a new Elastic
// IP, a stop/start) does not raise a false alarm.
type Refresher interface {
	Refresh(ctx context.Context, instanceID string) (inst Instance, found bool, err error)
}

// Prefetcher is an Inventory that can warm itself for a set of instances
// before they are looked up one by one. It is best effort: failures surface
// on the following Lookup.
type Prefetcher interface {
	Prefetch(ctx context.Context, instanceIDs []string)
}

// StaticInventory is a fixed in-memory Inventory keyed by instance id, for
// tests, benchmarks and local runs.
type StaticInventory map[string]Instance

// Lookup returns the instance stored under instanceID.
func (s StaticInventory) Lookup(_ context.Context, instanceID string) (Instance, bool, error) {
	in, ok := s[instanceID]
	return in, ok, nil
}

// LookupMany returns the stored instances among instanceIDs.
func (s StaticInventory) LookupMany(_ context.Context, instanceIDs []string) (map[string]Instance, error) {
	out := make(map[string]Instance, len(instanceIDs))
	for _, id := range instanceIDs {
		if in, ok := s[id]; ok {
			out[id] = in
		}
	}
	return out, nil
}

// ErrThrottled is wrapped by the error CachedInventory returns when a
// lookup of an instance it has never seen is refused by its rate limit.
var ErrThrottled = errors.New("inventory lookups of unknown instances are rate limited")

// Cache defaults; see CacheOptions.
const (
	DefaultCacheTTL           = 10 * time.Minute
	DefaultMinRefreshInterval = 30 * time.Second
	DefaultMissRate           = 5.0
	DefaultMissBurst          = 20
	DefaultMaxStale           = time.Hour
	DefaultCacheMaxEntries    = 10000
	DefaultPrefetchWorkers    = 4
)

// CacheOptions configures a CachedInventory. Zero fields take the
// defaults.
type CacheOptions struct {
	// TTL is how long a found instance is served from the cache
	// (DefaultCacheTTL).
	TTL time.Duration
	// MinRefreshInterval is the per-instance rate limit: the source is asked
	// about one instance at most once per interval, whatever triggers it (a
	// miss, an expired entry, a Refresh, a failing source). Unknown ids are
	// cached as not found for this long (DefaultMinRefreshInterval; at most
	// TTL).
	MinRefreshInterval time.Duration
	// MissRate and MissBurst bound, as a token bucket, how often per second
	// the source is asked about instances that are not in the cache or are
	// cached as not found, so that a flood of made-up ids cannot exhaust the
	// EC2 API rate limit (DefaultMissRate, DefaultMissBurst). A negative
	// MissRate disables the bound.
	MissRate  float64
	MissBurst int
	// MaxStale is how old an entry may be and still be served when the
	// source fails (DefaultMaxStale).
	MaxStale time.Duration
	// MaxEntries bounds the cache; the least recently used entries are
	// evicted first (DefaultCacheMaxEntries).
	MaxEntries int
	// PrefetchWorkers bounds concurrent source lookups in Prefetch when the
	// source is not a BulkInventory (DefaultPrefetchWorkers).
	PrefetchWorkers int
	// Now is the clock (time.Now).
	Now func() time.Time
}

// CacheStats counts what a CachedInventory did.
type CacheStats struct {
	Hits           int // lookups answered from the cache
	Coalesced      int // lookups that waited for a concurrent source lookup of the same id
	Fetches        int // instances asked from the source
	SourceErrors   int // failed source lookups
	StaleServed    int // lookups answered with an expired entry because the source failed
	Throttled      int // lookups of unknown ids refused by the miss rate limit
	Evictions      int // entries evicted to respect MaxEntries
	Entries        int // entries currently cached
	BulkLookups    int // LookupMany calls
	PrefetchErrors int // failed LookupMany calls
}

// CachedInventory wraps an Inventory (the EC2 API) in a bounded cache with
// a TTL. It is safe for concurrent use.
//
// A lookup is answered from the cache while the entry is fresh. An unknown
// id, or one cached as not found, is looked up in the source right away,
// so a brand-new instance is known the first time its credentials show up;
// the per-instance MinRefreshInterval and the global MissRate bound how
// often that can happen. A failing source is answered with the last known
// data for up to MaxStale. Concurrent lookups of one id share one source
// call.
//
// Why not a periodic inventory snapshot: the anchor project
// (detect-credential-compromise) runs a second, scheduled Lambda every 10
// minutes that describes every instance and network interface and writes
// the result to an S3 object, which the detector downloads on every
// invocation. This cache instead asks EC2 on demand, which means:
//
//   - no false alarms for instances younger than the snapshot: an instance
//     launched after the last run, or whose Elastic IP changed, is looked up
//     the moment it matters (and a would-be alert is re-checked after a
//     refresh) instead of raising BadSource/InstanceMissing for up to 10
//     minutes;
//   - no S3 bucket, bucket policy, object or second Lambda and schedule to
//     deploy, secure and monitor, and no window where the two disagree;
//   - fewer API calls when quiet: nothing is described unless instance
//     credentials are being used, and then only the instances involved,
//     once per TTL, instead of paginating through the whole region every 10
//     minutes around the clock;
//   - a bounded cost under attack: the miss rate limit caps the EC2 calls a
//     flood of unknown instance ids can cause.
//
// The cache is per Lambda container and starts empty on a cold start;
// prefetching the batch's instances (Prefetch, with a BulkInventory
// source) keeps the cold-start cost to a few calls.
type CachedInventory struct {
	src Inventory
	o   CacheOptions

	mu       sync.Mutex
	entries  map[string]*list.Element // of *cacheEntry
	lru      list.List                // front: most recently used
	inflight map[string]*call
	tokens   float64
	last     time.Time
	stats    CacheStats
}

type cacheEntry struct {
	id        string
	inst      Instance
	found     bool
	err       error     // set when the entry holds no answer because the source failed
	fetched   time.Time // last successful source answer
	attempted time.Time // last source call
}

func (e *cacheEntry) answer() answer { return answer{inst: e.inst, found: e.found, err: e.err} }

// call is one source lookup that concurrent lookups of the same id wait
// for.
type call struct {
	done  chan struct{}
	inst  Instance
	found bool
	err   error
}

// NewCachedInventory wraps src.
func NewCachedInventory(src Inventory, o CacheOptions) *CachedInventory {
	if o.TTL <= 0 {
		o.TTL = DefaultCacheTTL
	}
	if o.MinRefreshInterval <= 0 {
		o.MinRefreshInterval = DefaultMinRefreshInterval
	}
	o.MinRefreshInterval = min(o.MinRefreshInterval, o.TTL)
	if o.MissRate == 0 {
		o.MissRate = DefaultMissRate
	}
	if o.MissBurst <= 0 {
		o.MissBurst = DefaultMissBurst
	}
	if o.MaxStale <= 0 {
		o.MaxStale = DefaultMaxStale
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultCacheMaxEntries
	}
	if o.PrefetchWorkers <= 0 {
		o.PrefetchWorkers = DefaultPrefetchWorkers
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &CachedInventory{
		src:      src,
		o:        o,
		entries:  make(map[string]*list.Element),
		inflight: make(map[string]*call),
		tokens:   float64(o.MissBurst),
		last:     o.Now(),
	}
}

// Stats returns a snapshot of the counters.
func (c *CachedInventory) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = len(c.entries)
	return s
}

// Lookup returns the instance from the cache, or from the source when the
// cache has nothing fresh (see CachedInventory).
func (c *CachedInventory) Lookup(ctx context.Context, instanceID string) (Instance, bool, error) {
	return c.get(ctx, instanceID, false)
}

// Refresh looks the instance up in the source even if the cached entry is
// fresh, unless the source was asked about it less than
// MinRefreshInterval ago, in which case the cached entry is returned.
func (c *CachedInventory) Refresh(ctx context.Context, instanceID string) (Instance, bool, error) {
	return c.get(ctx, instanceID, true)
}

// needsFetch decides whether e must be refreshed from the source. Called
// with c.mu held.
func (c *CachedInventory) needsFetch(e *cacheEntry, now time.Time, force bool) bool {
	if now.Sub(e.attempted) < c.o.MinRefreshInterval {
		return false
	}
	return force || !e.found || now.Sub(e.fetched) >= c.o.TTL
}

// takeToken applies the miss rate limit. Called with c.mu held.
func (c *CachedInventory) takeToken(now time.Time) bool {
	if c.o.MissRate < 0 {
		return true
	}
	if d := now.Sub(c.last); d > 0 {
		c.tokens = min(float64(c.o.MissBurst), c.tokens+d.Seconds()*c.o.MissRate)
		c.last = now
	}
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

func (c *CachedInventory) entry(id string) *cacheEntry {
	if el, ok := c.entries[id]; ok {
		return el.Value.(*cacheEntry)
	}
	return nil
}

// answer is a lookup result.
type answer struct {
	inst  Instance
	found bool
	err   error
}

// begin decides how to answer a lookup of id: from the cache (hit), by
// waiting for a concurrent source call (wait), or by a new source call
// that the caller must perform and finish (own). Called with c.mu held.
func (c *CachedInventory) begin(id string, now time.Time, force bool) (a answer, hit bool, wait, own *call) {
	var e *cacheEntry
	if el, ok := c.entries[id]; ok {
		e = el.Value.(*cacheEntry)
		c.lru.MoveToFront(el)
		if !c.needsFetch(e, now, force) {
			c.stats.Hits++
			return e.answer(), true, nil, nil
		}
	}
	if cl, ok := c.inflight[id]; ok {
		c.stats.Coalesced++
		return answer{}, false, cl, nil
	}
	if (e == nil || !e.found) && !c.takeToken(now) {
		c.stats.Throttled++
		if e != nil {
			// Keep giving the last answer until allowed to re-check.
			return e.answer(), true, nil, nil
		}
		return answer{err: fmt.Errorf("detect: inventory lookup %s: %w", id, ErrThrottled)}, true, nil, nil
	}
	own = &call{done: make(chan struct{})}
	c.inflight[strings.Clone(id)] = own
	if e != nil {
		e.attempted = now
	}
	c.stats.Fetches++
	return answer{}, false, nil, own
}

// finish records the source's answer for id and releases the waiters.
// Called with c.mu held.
func (c *CachedInventory) finish(id string, cl *call, inst Instance, found bool, err error) {
	delete(c.inflight, id)
	now := c.o.Now()
	if err == nil {
		c.store(id, answer{inst: inst, found: found}, now)
	} else {
		c.stats.SourceErrors++
		err = fmt.Errorf("detect: inventory lookup %s: %w", id, err)
		switch e := c.entry(id); {
		case e != nil && e.found && now.Sub(e.fetched) <= c.o.MaxStale:
			c.stats.StaleServed++
			inst, found, err = e.inst, true, nil
		case e == nil || e.err != nil:
			// Remember the failure so that the per-instance rate limit
			// applies to failing lookups too.
			c.store(id, answer{err: err}, now)
		}
	}
	cl.inst, cl.found, cl.err = inst, found, err
	close(cl.done)
}

// store caches an answer. Called with c.mu held.
func (c *CachedInventory) store(id string, a answer, now time.Time) {
	if el, ok := c.entries[id]; ok {
		e := el.Value.(*cacheEntry)
		e.inst, e.found, e.err, e.attempted = a.inst, a.found, a.err, now
		if a.err == nil {
			e.fetched = now
		}
		c.lru.MoveToFront(el)
		return
	}
	key := strings.Clone(id) // do not pin the record the id came from
	e := &cacheEntry{id: key, inst: a.inst, found: a.found, err: a.err, attempted: now}
	if a.err == nil {
		e.fetched = now
	}
	c.entries[key] = c.lru.PushFront(e)
	for len(c.entries) > c.o.MaxEntries {
		el := c.lru.Back()
		c.lru.Remove(el)
		delete(c.entries, el.Value.(*cacheEntry).id)
		c.stats.Evictions++
	}
}

func (c *CachedInventory) get(ctx context.Context, id string, force bool) (Instance, bool, error) {
	c.mu.Lock()
	a, hit, wait, own := c.begin(id, c.o.Now(), force)
	c.mu.Unlock()
	switch {
	case hit:
		return a.inst, a.found, a.err
	case wait != nil:
		select {
		case <-wait.done:
			return wait.inst, wait.found, wait.err
		case <-ctx.Done():
			return Instance{}, false, fmt.Errorf("detect: inventory lookup %s: %w", id, ctx.Err())
		}
	}
	inst, found, err := c.src.Lookup(ctx, id)
	c.mu.Lock()
	c.finish(id, own, inst, found, err)
	c.mu.Unlock()
	return own.inst, own.found, own.err
}

// Prefetch looks up, in as few source calls as possible, the instances
// among ids that a Lookup would fetch: with LookupMany in chunks of
// MaxBulkLookup when the source is a BulkInventory, otherwise with up to
// PrefetchWorkers concurrent lookups. The miss rate limit is charged per
// source call: one token per bulk chunk, one per id otherwise. Concurrent
// Lookups of those ids wait for the prefetch instead of calling the source
// again.
func (c *CachedInventory) Prefetch(ctx context.Context, ids []string) {
	bulk, isBulk := c.src.(BulkInventory)
	c.mu.Lock()
	now := c.o.Now()
	var todo []string
	calls := make(map[string]*call)
	misses := 0
	for _, id := range ids {
		if _, dup := calls[id]; dup {
			continue
		}
		el, cached := c.entries[id]
		if cached && !c.needsFetch(el.Value.(*cacheEntry), now, false) {
			continue
		}
		if _, busy := c.inflight[id]; busy {
			continue
		}
		miss := !cached || !el.Value.(*cacheEntry).found
		if isBulk && miss {
			// One bulk call costs one token per chunk, charged below,
			// not one per id.
			if misses%MaxBulkLookup == 0 && !c.takeToken(now) {
				c.stats.Throttled++
				continue
			}
			misses++
			own := &call{done: make(chan struct{})}
			c.inflight[strings.Clone(id)] = own
			if cached {
				el.Value.(*cacheEntry).attempted = now
			}
			c.stats.Fetches++
			calls[id] = own
			todo = append(todo, id)
			continue
		}
		_, _, _, own := c.begin(id, now, false)
		if own == nil {
			continue
		}
		calls[id] = own
		todo = append(todo, id)
	}
	c.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	if isBulk {
		for chunk := range slices.Chunk(todo, MaxBulkLookup) {
			found, err := bulk.LookupMany(ctx, chunk)
			c.mu.Lock()
			c.stats.BulkLookups++
			if err != nil {
				c.stats.PrefetchErrors++
			}
			for _, id := range chunk {
				inst, ok := found[id]
				c.finish(id, calls[id], inst, ok, err)
			}
			c.mu.Unlock()
		}
		return
	}
	sem := make(chan struct{}, c.o.PrefetchWorkers)
	var wg sync.WaitGroup
	for _, id := range todo {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			inst, found, err := c.src.Lookup(ctx, id)
			c.mu.Lock()
			c.finish(id, calls[id], inst, found, err)
			c.mu.Unlock()
		})
	}
	wg.Wait()
}
