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

	"github.com/defenders-cdk/defenders/internal/tokenbucket"
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
	// PrimaryPrivateIP is the primary private IPv4 address of the
	// instance's primary network interface: the address IAM compares
	// aws:VpcSourceIp with (aws:Ec2InstanceSourcePrivateIPv4) when a lock
	// admits a call through a VPC endpoint. Invalid when the inventory does
	// not say (an IPv6-only instance, or an inventory that does not know).
	PrimaryPrivateIP netip.Addr
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

// IsLockedPrivateIP reports whether a is the private address from which
// the instance's lock admits calls through a VPC endpoint: its primary
// private IPv4 (PrimaryPrivateIP), or, when the inventory does not say
// which address is primary, any of its private addresses (HasPrivateIP).
func (in *Instance) IsLockedPrivateIP(a netip.Addr) bool {
	if in.PrimaryPrivateIP.IsValid() {
		return a.Unmap() == in.PrimaryPrivateIP.Unmap()
	}
	return in.HasPrivateIP(a)
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

// RefreshPrefetcher is a Refresher that can refresh many instances in as
// few source calls as possible before they are refreshed one by one: the
// Processor refreshes all of a batch's would-be alerts with one call, and
// each Refresh that follows is answered from the cache. It is best effort:
// failures surface on the following Refresh.
type RefreshPrefetcher interface {
	PrefetchRefresh(ctx context.Context, instanceIDs []string)
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

// Errors of a CachedInventory lookup.
var (
	// ErrThrottled is wrapped by the error CachedInventory returns when a
	// lookup of an instance it has never seen is refused by its rate limit:
	// the token it needs would not come within CacheOptions.MissMaxWait.
	ErrThrottled = errors.New("inventory lookups of unknown instances are rate limited")
	// ErrUnavailable is wrapped by the error CachedInventory returns,
	// without calling its source, for an instance it has no usable answer
	// for while its circuit breaker is open (the source failed
	// BreakerThreshold calls in a row). The record is undecided and
	// retried: it is never judged OK.
	ErrUnavailable = errors.New("the inventory's source keeps failing: lookups are paused (circuit breaker open)")
)

// Cache defaults; see CacheOptions. The miss rate limit is sized from
// TestBacklogOfUnseenInstances (internal/detectorfn): a cold container
// draining a backlog of 100 deliveries with 100 to 430 instances it has
// never seen makes 1.1 to 1.3 DescribeInstances calls per delivery (2 for
// deliveries of 250 unseen instances) and, paced at 5 calls a second with
// waits of at most 180 ms per call, fails none of them. 5 calls a second
// is a quarter of the refill rate EC2 documents for an account's
// non-mutating calls in a region (20 a second, bucket of 100), which
// every other tool of the account shares.
const (
	DefaultCacheTTL           = 10 * time.Minute
	DefaultMinRefreshInterval = 30 * time.Second
	DefaultMissRate           = 5.0
	DefaultMissBurst          = 20
	DefaultMissMaxWait        = 2 * time.Second
	DefaultErrorRetry         = time.Second
	DefaultBreakerThreshold   = 3
	DefaultBreakerCooldown    = 5 * time.Second
	DefaultBreakerMaxCooldown = 30 * time.Second
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
	// miss, an expired entry, a Refresh), except after a failed lookup of an
	// instance with no usable answer, which ErrorRetry governs. Unknown ids
	// are cached as not found for this long (DefaultMinRefreshInterval; at
	// most TTL).
	MinRefreshInterval time.Duration
	// MissRate and MissBurst bound, as a token bucket, the source calls per
	// second that ask about instances that are not in the cache or are
	// cached as not found, so that a flood of made-up ids cannot exhaust the
	// account's EC2 API rate limit (DefaultMissRate, DefaultMissBurst). One
	// source call costs one token however many instances it asks about:
	// a LookupMany of up to MaxBulkLookup ids (one DescribeInstances) or a
	// Lookup. A negative MissRate disables the bound.
	MissRate  float64
	MissBurst int
	// MissMaxWait is how long a call may wait for its token before the
	// lookup fails with ErrThrottled (DefaultMissMaxWait; negative: never
	// wait). Waiting paces a backlog instead of failing it; the wait also
	// ends with the lookup's context.
	MissMaxWait time.Duration
	// ErrorRetry is how long a failed lookup of an instance without a
	// usable cached answer is remembered before the source is asked about
	// it again; it doubles with each consecutive failure of that instance,
	// up to MinRefreshInterval (DefaultErrorRetry). A throttling blip thus
	// delays a new instance by a second or two, not by the refresh
	// interval.
	ErrorRetry time.Duration
	// BreakerThreshold consecutive failed source calls open the circuit
	// breaker (DefaultBreakerThreshold; negative: no breaker). While it is
	// open, for BreakerCooldown (DefaultBreakerCooldown), doubled each time
	// it opens again without a success in between up to BreakerMaxCooldown
	// (DefaultBreakerMaxCooldown), lookups do not call the source: they get
	// the last answer (a found entry younger than MaxStale, a not-found
	// entry) or an error wrapping ErrUnavailable. The first call after the
	// cool-down is a probe: a success closes the breaker, a failure opens it
	// again. Calls cut short by the caller's own context do not count.
	BreakerThreshold   int
	BreakerCooldown    time.Duration
	BreakerMaxCooldown time.Duration
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
	// Sleep waits for d or until ctx is done, returning ctx.Err() in the
	// latter case (a timer by default; tests inject a fake clock's).
	Sleep func(ctx context.Context, d time.Duration) error
}

// CacheStats counts what a CachedInventory did.
type CacheStats struct {
	Hits            int           // lookups answered from the cache
	Coalesced       int           // lookups that waited for a concurrent source lookup of the same id
	Fetches         int           // instances asked from the source
	SourceCalls     int           // source calls (a LookupMany or a Lookup)
	SourceErrors    int           // failed source lookups (instances)
	StaleServed     int           // lookups answered with an expired entry because the source failed
	Throttled       int           // lookups of unknown ids refused by the miss rate limit
	RateWaits       int           // source calls that waited for the miss rate limit
	RateWaited      time.Duration // the time they waited
	BreakerOpens    int           // times the circuit breaker opened
	BreakerRejected int           // lookups answered without the source because the breaker was open
	Evictions       int           // entries evicted to respect MaxEntries
	Entries         int           // entries currently cached
	BulkLookups     int           // LookupMany calls
	PrefetchErrors  int           // failed LookupMany calls
}

// CachedInventory wraps an Inventory (the EC2 API) in a bounded cache with
// a TTL. It is safe for concurrent use.
//
// A lookup is answered from the cache while the entry is fresh. An unknown
// id, or one cached as not found, is looked up in the source right away,
// so a brand-new instance is known the first time its credentials show up;
// the per-instance MinRefreshInterval and the global miss rate limit bound
// how often that can happen. Concurrent lookups of one id share one source
// call.
//
// Under load and faults (see CacheOptions for the knobs):
//
//   - the miss rate limit is charged per source call, not per instance, so
//     a Prefetch of a batch's unseen instances costs one token per
//     MaxBulkLookup of them; a call that finds the bucket empty waits for
//     its token (up to MissMaxWait) instead of failing, so a backlog is
//     paced rather than failed;
//   - a failed lookup of an instance with no usable cached answer is
//     remembered for ErrorRetry, doubling with each failure in a row up to
//     MinRefreshInterval: a throttling blip delays a new instance by about
//     a second;
//   - a failing source is answered with the last known data for up to
//     MaxStale;
//   - after BreakerThreshold failed calls in a row the circuit breaker
//     stops calling the source for a cool-down, so that an EC2 outage costs
//     an invocation a few calls, not its whole time budget. It fails
//     closed: what has no usable cached answer is an error (the record is
//     retried), never an OK.
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
	bucket   *tokenbucket.Bucket // the miss rate limit
	stats    CacheStats

	// The circuit breaker.
	fails     int           // source calls failed in a row
	cooldown  time.Duration // of the last opening; 0 after a success
	openUntil time.Time
	lastErr   error // the last source failure
}

var (
	_ Inventory         = (*CachedInventory)(nil)
	_ Refresher         = (*CachedInventory)(nil)
	_ Prefetcher        = (*CachedInventory)(nil)
	_ RefreshPrefetcher = (*CachedInventory)(nil)
)

type cacheEntry struct {
	id        string
	inst      Instance
	found     bool
	err       error     // set when the entry holds no answer because the source failed
	fetched   time.Time // last successful source answer
	attempted time.Time // last source call
	failures  int       // source failures in a row while err is set
	retryAt   time.Time // when err is set: when the source may be asked again
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
	if o.MissMaxWait == 0 {
		o.MissMaxWait = DefaultMissMaxWait
	}
	if o.ErrorRetry <= 0 {
		o.ErrorRetry = DefaultErrorRetry
	}
	o.ErrorRetry = min(o.ErrorRetry, o.MinRefreshInterval)
	if o.BreakerThreshold == 0 {
		o.BreakerThreshold = DefaultBreakerThreshold
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = DefaultBreakerCooldown
	}
	if o.BreakerMaxCooldown <= 0 {
		o.BreakerMaxCooldown = DefaultBreakerMaxCooldown
	}
	o.BreakerMaxCooldown = max(o.BreakerMaxCooldown, o.BreakerCooldown)
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
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	return &CachedInventory{
		src:      src,
		o:        o,
		entries:  make(map[string]*list.Element),
		inflight: make(map[string]*call),
		bucket:   tokenbucket.New(o.MissRate, o.MissBurst),
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

// Len returns the number of cached entries: found instances, negative
// answers and remembered failures (Sizer).
func (c *CachedInventory) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Lookup returns the instance from the cache, or from the source when the
// cache has nothing fresh (see CachedInventory).
func (c *CachedInventory) Lookup(ctx context.Context, instanceID string) (Instance, bool, error) {
	return c.get(ctx, instanceID, false)
}

// Refresh looks the instance up in the source even if the cached entry is
// fresh, unless the source was asked about it less than
// MinRefreshInterval ago (or, after a failure, less than its retry delay
// ago), or the breaker is open, in which case the cached answer is
// returned.
func (c *CachedInventory) Refresh(ctx context.Context, instanceID string) (Instance, bool, error) {
	return c.get(ctx, instanceID, true)
}

// needsFetch decides whether e must be refreshed from the source. Called
// with c.mu held.
func (c *CachedInventory) needsFetch(e *cacheEntry, now time.Time, force bool) bool {
	if e.err != nil {
		return !now.Before(e.retryAt)
	}
	if now.Sub(e.attempted) < c.o.MinRefreshInterval {
		return false
	}
	return force || !e.found || now.Sub(e.fetched) >= c.o.TTL
}

// maxWait is how long a lookup under ctx may wait for a token.
func (c *CachedInventory) maxWait(ctx context.Context) time.Duration {
	w := c.o.MissMaxWait
	if d, ok := ctx.Deadline(); ok {
		w = min(w, time.Until(d))
	}
	return w
}

// reserve takes a token of the miss rate limit and returns how long the
// caller must wait before its call; ok is false, and nothing is taken,
// when the token would come later than maxWait. Tokens are reserved in
// advance (the bucket may go negative), so that concurrent callers queue
// up at the configured rate. Called with c.mu held.
func (c *CachedInventory) reserve(now time.Time, maxWait time.Duration) (time.Duration, bool) {
	wait, ok := c.bucket.Reserve(now, maxWait)
	if ok && wait > 0 {
		c.stats.RateWaits++
		c.stats.RateWaited += wait
	}
	return wait, ok
}

// breakerOpen reports whether the breaker keeps the source from being
// called. Called with c.mu held.
func (c *CachedInventory) breakerOpen(now time.Time) bool {
	return c.o.BreakerThreshold > 0 && now.Before(c.openUntil)
}

// called records the outcome of a source call made under ctx for the
// breaker. Called with c.mu held.
func (c *CachedInventory) called(ctx context.Context, err error, now time.Time) {
	c.stats.SourceCalls++
	switch {
	case err == nil:
		c.fails, c.cooldown = 0, 0
		return
	case ctx.Err() != nil:
		return // the caller gave up: says nothing about the source
	}
	c.fails++
	c.lastErr = err
	if c.o.BreakerThreshold > 0 && c.fails >= c.o.BreakerThreshold {
		if c.cooldown == 0 {
			c.cooldown = c.o.BreakerCooldown
		} else {
			c.cooldown = min(2*c.cooldown, c.o.BreakerMaxCooldown)
		}
		c.openUntil = now.Add(c.cooldown)
		c.stats.BreakerOpens++
	}
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

// unavailable answers a lookup of id that the open breaker keeps from the
// source: the last answer when there is a usable one (a found entry
// younger than MaxStale, a not-found entry), otherwise an error wrapping
// ErrUnavailable and the last failure. Called with c.mu held.
func (c *CachedInventory) unavailable(id string, e *cacheEntry, now time.Time) answer {
	c.stats.BreakerRejected++
	switch {
	case e != nil && e.found && now.Sub(e.fetched) <= c.o.MaxStale:
		if now.Sub(e.fetched) >= c.o.TTL {
			c.stats.StaleServed++
		}
		return e.answer()
	case e != nil && e.err == nil && !e.found:
		return e.answer()
	case c.lastErr != nil:
		return answer{err: fmt.Errorf("detect: inventory lookup %s: %w (last failure: %w)", id, ErrUnavailable, c.lastErr)}
	}
	return answer{err: fmt.Errorf("detect: inventory lookup %s: %w", id, ErrUnavailable)}
}

// refused answers a lookup of id that the rate limit refused: the last
// answer if there is one, ErrThrottled otherwise. Called with c.mu held.
func (c *CachedInventory) refused(id string, e *cacheEntry) answer {
	c.stats.Throttled++
	if e != nil {
		// Keep giving the last answer until allowed to re-check.
		return e.answer()
	}
	return answer{err: fmt.Errorf("detect: inventory lookup %s: %w", id, ErrThrottled)}
}

// begin decides how to answer a lookup of id: from the cache (hit), by
// waiting for a concurrent source call (wait), or by a new source call
// that the caller must perform after delay and finish (own). Called with
// c.mu held.
func (c *CachedInventory) begin(id string, now time.Time, force bool, maxWait time.Duration) (a answer, hit bool, wait, own *call, delay time.Duration) {
	e := c.entry(id)
	if e != nil {
		c.lru.MoveToFront(c.entries[id])
		if !c.needsFetch(e, now, force) {
			c.stats.Hits++
			return e.answer(), true, nil, nil, 0
		}
	}
	if cl, ok := c.inflight[id]; ok {
		c.stats.Coalesced++
		return answer{}, false, cl, nil, 0
	}
	if c.breakerOpen(now) {
		return c.unavailable(id, e, now), true, nil, nil, 0
	}
	if e == nil || !e.found {
		d, ok := c.reserve(now, maxWait)
		if !ok {
			return c.refused(id, e), true, nil, nil, 0
		}
		delay = d
	}
	own = &call{done: make(chan struct{})}
	c.inflight[strings.Clone(id)] = own
	return answer{}, false, nil, own, delay
}

// attempt records that the source is about to be asked about ids, for
// the per-instance rate limit. Called with c.mu held.
func (c *CachedInventory) attempt(now time.Time, ids ...string) {
	c.stats.Fetches += len(ids)
	for _, id := range ids {
		if e := c.entry(id); e != nil {
			e.attempted = now
		}
	}
}

// release ends the source call cl of id without an answer from the source
// (it was refused, or its wait was cut short): its waiters get a.
// Called with c.mu held.
func (c *CachedInventory) release(id string, cl *call, a answer) {
	delete(c.inflight, id)
	cl.inst, cl.found, cl.err = a.inst, a.found, a.err
	close(cl.done)
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
		case e != nil && e.err == nil && !e.found:
			// Keep the negative answer; this lookup reports the failure.
		default:
			// Nothing usable: remember the failure, so that the next
			// lookups wait for the retry delay instead of calling again.
			failures := 1
			if e != nil && e.err != nil {
				failures = e.failures + 1
			}
			c.store(id, answer{err: err}, now)
			e = c.entry(id)
			e.failures = failures
			e.retryAt = now.Add(c.retryDelay(failures))
		}
	}
	cl.inst, cl.found, cl.err = inst, found, err
	close(cl.done)
}

// retryDelay is how long a lookup that failed n times in a row is
// remembered: ErrorRetry, doubling, up to MinRefreshInterval.
func (c *CachedInventory) retryDelay(n int) time.Duration {
	d := c.o.ErrorRetry
	for i := 1; i < n && d < c.o.MinRefreshInterval; i++ {
		d *= 2
	}
	return min(d, c.o.MinRefreshInterval)
}

// store caches an answer. Called with c.mu held.
func (c *CachedInventory) store(id string, a answer, now time.Time) {
	if el, ok := c.entries[id]; ok {
		e := el.Value.(*cacheEntry)
		e.inst, e.found, e.err, e.attempted = a.inst, a.found, a.err, now
		if a.err == nil {
			e.fetched, e.failures = now, 0
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
	maxWait := c.maxWait(ctx)
	c.mu.Lock()
	a, hit, wait, own, delay := c.begin(id, c.o.Now(), force, maxWait)
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
	if delay > 0 {
		if err := c.o.Sleep(ctx, delay); err != nil {
			c.mu.Lock()
			c.release(id, own, answer{err: fmt.Errorf("detect: inventory lookup %s: waiting for the rate limit: %w", id, err)})
			c.mu.Unlock()
			return own.inst, own.found, own.err
		}
	}
	c.mu.Lock()
	c.attempt(c.o.Now(), id)
	c.mu.Unlock()
	inst, found, err := c.src.Lookup(ctx, id)
	c.mu.Lock()
	c.called(ctx, err, c.o.Now())
	c.finish(id, own, inst, found, err)
	c.mu.Unlock()
	return own.inst, own.found, own.err
}

// Prefetch looks up, in as few source calls as possible, the instances
// among ids that a Lookup would fetch: with LookupMany in chunks of
// MaxBulkLookup when the source is a BulkInventory, otherwise with up to
// PrefetchWorkers concurrent lookups. The miss rate limit is charged per
// source call: one token per bulk chunk that holds an instance not known
// to exist, one per such instance otherwise. Concurrent Lookups of those
// ids wait for the prefetch instead of calling the source again. Nothing
// is asked while the breaker is open.
func (c *CachedInventory) Prefetch(ctx context.Context, ids []string) {
	c.prefetch(ctx, ids, false)
}

// PrefetchRefresh is Prefetch for Refresh: it asks the source, in as few
// calls as possible, about the instances among ids that a Refresh would
// ask about (those not asked for MinRefreshInterval), so that the
// Refreshes that follow are answered from the cache.
func (c *CachedInventory) PrefetchRefresh(ctx context.Context, ids []string) {
	c.prefetch(ctx, ids, true)
}

func (c *CachedInventory) prefetch(ctx context.Context, ids []string, force bool) {
	bulk, isBulk := c.src.(BulkInventory)
	if !isBulk {
		c.prefetchEach(ctx, ids, force)
		return
	}
	c.mu.Lock()
	now := c.o.Now()
	if c.breakerOpen(now) {
		c.mu.Unlock()
		return
	}
	var todo []string
	calls := make(map[string]*call)
	miss := make(map[string]bool)
	for _, id := range ids {
		if _, dup := calls[id]; dup || id == "" {
			continue
		}
		e := c.entry(id)
		if e != nil && !c.needsFetch(e, now, force) {
			continue
		}
		if _, busy := c.inflight[id]; busy {
			continue
		}
		own := &call{done: make(chan struct{})}
		c.inflight[strings.Clone(id)] = own
		calls[id] = own
		miss[id] = e == nil || !e.found
		todo = append(todo, id)
	}
	c.mu.Unlock()
	for chunk := range slices.Chunk(todo, MaxBulkLookup) {
		maxWait := c.maxWait(ctx)
		c.mu.Lock()
		now := c.o.Now()
		var stop func(id string) answer
		var delay time.Duration
		switch {
		case c.breakerOpen(now):
			stop = func(id string) answer { return c.unavailable(id, c.entry(id), now) }
		case slices.ContainsFunc(chunk, func(id string) bool { return miss[id] }):
			d, ok := c.reserve(now, maxWait)
			if !ok {
				stop = func(id string) answer { return c.refused(id, c.entry(id)) }
			}
			delay = d
		}
		if stop != nil {
			for _, id := range chunk {
				c.release(id, calls[id], stop(id))
			}
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		if delay > 0 {
			if err := c.o.Sleep(ctx, delay); err != nil {
				c.mu.Lock()
				for _, id := range chunk {
					c.release(id, calls[id], answer{err: fmt.Errorf("detect: inventory lookup %s: waiting for the rate limit: %w", id, err)})
				}
				c.mu.Unlock()
				continue
			}
		}
		c.mu.Lock()
		c.attempt(c.o.Now(), chunk...)
		c.mu.Unlock()
		found, err := bulk.LookupMany(ctx, chunk)
		c.mu.Lock()
		c.stats.BulkLookups++
		if err != nil {
			c.stats.PrefetchErrors++
		}
		c.called(ctx, err, c.o.Now())
		for _, id := range chunk {
			inst, ok := found[id]
			c.finish(id, calls[id], inst, ok, err)
		}
		c.mu.Unlock()
	}
}

// prefetchEach prefetches with one lookup per instance, PrefetchWorkers at
// a time.
func (c *CachedInventory) prefetchEach(ctx context.Context, ids []string, force bool) {
	sem := make(chan struct{}, c.o.PrefetchWorkers)
	var wg sync.WaitGroup
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] || id == "" {
			continue
		}
		seen[id] = true
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, _, _ = c.get(ctx, id, force)
		})
	}
	wg.Wait()
}
