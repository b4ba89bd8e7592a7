package detect

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Regions
//
// An inventory describes one region, and a CloudTrail record does not say
// which region the calling instance lives in: awsRegion is the region of
// the API that was called. An instance in eu-west-1 may legitimately call
// an API in us-east-1, and calls to global services (IAM, the STS global
// endpoint, ...) are recorded with awsRegion us-east-1 whatever the
// caller's region; EventBridge delivers those in us-east-1 only, and a
// multi-region trail delivers every region's records to one place. Judging
// such a record against the detector's own region alone turns it into a
// false InstanceMissing.
//
// MultiRegionInventory therefore looks an instance up in the detector's
// region first and, when it is not there, in the account's other enabled
// regions, and reports the instance with the region it was found in
// (Instance.Region), so that the record is judged against the addresses
// the instance has where it lives. Only an instance found in no region is
// missing. Instance ids are unique, so the first region that knows the
// instance is the one.

// Errors of a MultiRegionInventory lookup.
var (
	// ErrRegionLookup is wrapped by the error returned when the instance
	// is not in the detector's region and looking it up in the other
	// regions failed (DescribeRegions or a regional lookup failed or was
	// throttled, or the time budget ran out). The record is undecided: it
	// must be retried, never reported as missing.
	ErrRegionLookup = errors.New("detect: cross-region instance lookup failed")
	// ErrNotInSearchedRegions is wrapped by the error returned when the
	// instance is in none of the regions searched and the region
	// restriction (RegionOptions.Allowed) left some enabled regions out:
	// the instance may live there, so the record can be neither judged nor
	// reported as missing. The Processor skips and counts it.
	ErrNotInSearchedRegions = errors.New("detect: the instance is in none of the searched regions, and some enabled regions are not searched")
)

// Defaults of RegionOptions.
const (
	DefaultRegionWorkers = 4
	DefaultRegionBudget  = 10 * time.Second
	// DefaultRegionsRetry is how long a failed Regions call is remembered
	// before it is tried again.
	DefaultRegionsRetry = 30 * time.Second
)

// RegionOptions configures a MultiRegionInventory.
type RegionOptions struct {
	// HomeRegion is the detector's region, whose inventory is the home
	// inventory. Required.
	HomeRegion string
	// Regions returns the regions where the account's instances may live:
	// the regions enabled for the account (ec2:DescribeRegions). It is
	// called until it succeeds once and its answer is kept for the life of
	// the inventory (a Lambda container); a failure is remembered for
	// DefaultRegionsRetry. Required.
	Regions func(ctx context.Context) ([]string, error)
	// Allowed restricts the regions searched besides the home region,
	// which is always searched; nil or empty searches every region Regions
	// returns. Allowed regions that Regions does not return are not
	// searched (they are not enabled: their endpoints refuse the account).
	// When the restriction leaves enabled regions out, an instance found
	// in no searched region is reported with ErrNotInSearchedRegions
	// instead of as missing.
	Allowed []string
	// Inventory returns the inventory of a region other than the home
	// region, normally a CachedInventory over that region's EC2 API (so
	// that its answers, negative ones included, are cached like the home
	// region's). It is called once per region. Required.
	Inventory func(region string) Inventory
	// Workers bounds the regions looked up concurrently
	// (DefaultRegionWorkers).
	Workers int
	// Budget bounds the time of one cross-region search, regional calls
	// and their retries included (DefaultRegionBudget).
	Budget time.Duration
	// MaxLocations bounds the memory of which region each instance was
	// found in (DefaultCacheMaxEntries).
	MaxLocations int
	// HintFirst asks the hint region (the record's awsRegion) before the
	// home region. The central detector of an organisation sets it for the
	// member accounts: their instances live in every region, not mostly
	// in the detector's, and most calls are made to the caller's own
	// region, so the hint finds an instance in one call where home-first
	// costs a miss in the home region first.
	HintFirst bool
	// Now is the clock (time.Now).
	Now func() time.Time
}

// RegionStats counts what a MultiRegionInventory did.
type RegionStats struct {
	Searches       int // cross-region searches (ids not in the home region nor located before)
	RegionLookups  int // regional lookups made by searches (each a cache hit or a source call)
	Found          int // searches that found the instance in another region
	Missing        int // searches that found it nowhere, every enabled region searched
	NotSearched    int // searches that found it nowhere with enabled regions left out
	Failed         int // searches that failed (ErrRegionLookup)
	RegionsCalls   int // calls of RegionOptions.Regions
	LocatedLookups int // lookups answered through the remembered region of the instance
}

// RegionHinter is an Inventory spanning regions that can use the record's
// awsRegion as a hint of where to look first: most calls are made to the
// caller's own region, so one regional lookup usually finds an instance
// that is not in the detector's region, instead of one per region.
type RegionHinter interface {
	// LookupHint is Lookup, asking region first among the other regions.
	LookupHint(ctx context.Context, instanceID, region string) (Instance, bool, error)
	// PrefetchHints is Prefetch with regions[i] the hint of
	// instanceIDs[i].
	PrefetchHints(ctx context.Context, instanceIDs, regions []string)
}

// MultiRegionInventory is an Inventory over the detector's region and the
// account's other enabled regions (see "Regions" above). It implements
// Refresher, Prefetcher, RefreshPrefetcher and RegionHinter, and is safe
// for concurrent use.
//
// A lookup asks, in order:
//
//  1. the region the instance was last found in, if it is not the home
//     region (instances never change regions; a not-found there means the
//     instance is gone, and the search starts over);
//  2. with HintFirst, the hint region: found is the answer;
//  3. the home inventory: found, or an error, is the answer;
//  4. the hint region (the record's awsRegion), if it is another searched
//     region;
//  5. the remaining searched regions, Workers at a time, until one knows
//     the instance (no new region is asked once it is found), within
//     Budget.
//
// An error of any region that was asked, with the instance found nowhere,
// fails the lookup with ErrRegionLookup: an unanswered region may be the
// one the instance lives in. Regional answers are cached by the regional
// inventories, so repeating a search within their refresh interval costs
// no call.
type MultiRegionInventory struct {
	home Inventory
	o    RegionOptions

	regionsMu  sync.Mutex // held while calling o.Regions
	searchSet  []string   // enabled ∩ allowed, home excluded; nil until known
	excluded   []string   // enabled regions left out by Allowed
	known      bool
	regionsErr error
	regionsAt  time.Time

	mu        sync.Mutex
	regional  map[string]Inventory
	locations map[string]string // instance id -> region, home region excluded
	stats     RegionStats
}

var (
	_ Inventory         = (*MultiRegionInventory)(nil)
	_ Refresher         = (*MultiRegionInventory)(nil)
	_ Prefetcher        = (*MultiRegionInventory)(nil)
	_ RefreshPrefetcher = (*MultiRegionInventory)(nil)
	_ RegionHinter      = (*MultiRegionInventory)(nil)
)

// NewMultiRegionInventory returns a MultiRegionInventory whose home region
// inventory is home (normally a CachedInventory).
func NewMultiRegionInventory(home Inventory, o RegionOptions) *MultiRegionInventory {
	if o.Workers <= 0 {
		o.Workers = DefaultRegionWorkers
	}
	if o.Budget <= 0 {
		o.Budget = DefaultRegionBudget
	}
	if o.MaxLocations <= 0 {
		o.MaxLocations = DefaultCacheMaxEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &MultiRegionInventory{
		home:      home,
		o:         o,
		regional:  make(map[string]Inventory),
		locations: make(map[string]string),
	}
}

// Stats returns a snapshot of the counters.
func (m *MultiRegionInventory) Stats() RegionStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Len returns the entries cached by the regional inventories that are
// Sizers (the home one included) plus the remembered locations (Sizer).
func (m *MultiRegionInventory) Len() int {
	m.mu.Lock()
	n := len(m.locations)
	invs := make([]Inventory, 0, len(m.regional)+1)
	invs = append(invs, m.home)
	for _, inv := range m.regional {
		invs = append(invs, inv)
	}
	m.mu.Unlock()
	for _, inv := range invs {
		if s, ok := inv.(Sizer); ok {
			n += s.Len()
		}
	}
	return n
}

// Lookup looks the instance up in the home region, then in the other
// regions.
func (m *MultiRegionInventory) Lookup(ctx context.Context, instanceID string) (Instance, bool, error) {
	return m.get(ctx, instanceID, "", false)
}

// LookupHint is Lookup with region asked first among the other regions.
func (m *MultiRegionInventory) LookupHint(ctx context.Context, instanceID, region string) (Instance, bool, error) {
	return m.get(ctx, instanceID, region, false)
}

// Refresh is Lookup with every inventory asked to bypass its cache (each
// within its own refresh rate limit).
func (m *MultiRegionInventory) Refresh(ctx context.Context, instanceID string) (Instance, bool, error) {
	return m.get(ctx, instanceID, "", true)
}

// lookupIn asks inv, refreshing if asked and possible.
func lookupIn(ctx context.Context, inv Inventory, id string, refresh bool) (Instance, bool, error) {
	if r, ok := inv.(Refresher); ok && refresh {
		return r.Refresh(ctx, id)
	}
	return inv.Lookup(ctx, id)
}

func (m *MultiRegionInventory) get(ctx context.Context, id, hint string, refresh bool) (Instance, bool, error) {
	if r, ok := m.location(id); ok {
		m.count(func(s *RegionStats) { s.LocatedLookups++ })
		inst, found, err := lookupIn(ctx, m.inventory(r), id, refresh)
		switch {
		case err != nil:
			return Instance{}, false, fmt.Errorf("%w: %s in %s: %w", ErrRegionLookup, id, r, err)
		case found:
			inst.Region = r
			return inst, true, nil
		}
		m.forget(id) // terminated or gone: search again
	}
	if m.o.HintFirst && hint != "" && hint != m.o.HomeRegion {
		if regions, _, err := m.regions(ctx); err == nil && slices.Contains(regions, hint) {
			// A miss or an error here falls through: the search asks the
			// hint region again (a cache hit) and reports its error.
			if inst, found, err := lookupIn(ctx, m.inventory(hint), id, refresh); err == nil && found {
				m.remember(id, hint)
				inst.Region = hint
				return inst, true, nil
			}
		}
	}
	inst, found, err := lookupIn(ctx, m.home, id, refresh)
	if err != nil || found {
		if found && inst.Region == "" {
			inst.Region = m.o.HomeRegion
		}
		return inst, found, err
	}
	return m.search(ctx, id, hint, refresh)
}

// search looks id up in the other regions.
func (m *MultiRegionInventory) search(ctx context.Context, id, hint string, refresh bool) (Instance, bool, error) {
	m.count(func(s *RegionStats) { s.Searches++ })
	regions, excluded, err := m.regions(ctx)
	if err != nil {
		m.count(func(s *RegionStats) { s.Failed++ })
		return Instance{}, false, fmt.Errorf("%w: %s: list the enabled regions: %w", ErrRegionLookup, id, err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.o.Budget)
	defer cancel()

	var (
		mu       sync.Mutex
		foundIn  string
		foundAs  Instance
		failures []error
		asked    int
	)
	ask := func(r string) {
		inst, found, err := lookupIn(ctx, m.inventory(r), id, refresh)
		mu.Lock()
		defer mu.Unlock()
		asked++
		switch {
		case err != nil:
			failures = append(failures, fmt.Errorf("%s: %w", r, err))
		case found && foundIn == "":
			foundIn, foundAs = r, inst
		}
	}
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return foundIn != ""
	}
	order := regions
	if hint != "" && slices.Contains(regions, hint) {
		ask(hint)
		order = slices.DeleteFunc(slices.Clone(regions), func(r string) bool { return r == hint })
	}
	if !done() {
		boundedEach(order, m.o.Workers, done, ask)
	}
	m.count(func(s *RegionStats) { s.RegionLookups += asked })

	switch {
	case foundIn != "":
		m.remember(id, foundIn)
		m.count(func(s *RegionStats) { s.Found++ })
		foundAs.Region = foundIn
		return foundAs, true, nil
	case len(failures) > 0:
		m.count(func(s *RegionStats) { s.Failed++ })
		return Instance{}, false, fmt.Errorf("%w: %s: %d of %d regions did not answer (first: %w)",
			ErrRegionLookup, id, len(failures), len(regions), failures[0])
	case len(excluded) > 0:
		m.count(func(s *RegionStats) { s.NotSearched++ })
		return Instance{}, false, fmt.Errorf("%w: %s is in none of %d searched regions; %d enabled regions are not searched (%s)",
			ErrNotInSearchedRegions, id, len(regions)+1, len(excluded), strings.Join(excluded, ","))
	}
	m.count(func(s *RegionStats) { s.Missing++ })
	return Instance{}, false, nil
}

// boundedEach calls f for each item, at most workers at a time, and stops
// starting new calls once stop reports true.
func boundedEach(items []string, workers int, stop func() bool, f func(string)) {
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for _, it := range items {
		sem <- struct{}{}
		if stop() {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			f(it)
		})
	}
	wg.Wait()
}

// Prefetch warms the inventories for ids.
func (m *MultiRegionInventory) Prefetch(ctx context.Context, ids []string) {
	m.PrefetchHints(ctx, ids, nil)
}

// PrefetchHints warms the inventories for ids with as few calls as the
// regional inventories allow (one bulk call per region and chunk when they
// are CachedInventories over BulkInventories): the remembered region of
// located ids (and no other), the home region for the others (with
// HintFirst, their hint regions first), then, for ids the home region does
// not know, their hint regions, and finally every other searched region
// for those still not found. It is best effort: errors surface on the
// following lookups.
func (m *MultiRegionInventory) PrefetchHints(ctx context.Context, ids, hints []string) {
	hintOf := make(map[string]string, len(ids))
	for i, id := range ids {
		if i < len(hints) && hints[i] != "" && hints[i] != m.o.HomeRegion {
			hintOf[id] = hints[i]
		}
	}
	byRegion := map[string][]string{}
	var unlocated []string
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] || id == "" {
			continue
		}
		seen[id] = true
		if r, ok := m.location(id); ok {
			byRegion[r] = append(byRegion[r], id)
			continue
		}
		unlocated = append(unlocated, id)
	}
	// Located ids are looked up where they live only (a lookup never asks
	// the home region about them), so the home region is not asked either.
	m.prefetchRegions(ctx, byRegion)
	if m.o.HintFirst {
		unlocated = m.prefetchHintsFirst(ctx, unlocated, hintOf)
	}
	if pf, ok := m.home.(Prefetcher); ok && len(unlocated) > 0 {
		pf.Prefetch(ctx, unlocated)
	}
	var misses []string
	for _, id := range unlocated {
		// A cache hit after the prefetch above (or the lookup Process
		// would make next, now cached).
		if _, found, err := m.home.Lookup(ctx, id); err == nil && !found {
			misses = append(misses, id)
		}
	}
	if len(misses) == 0 {
		return
	}
	regions, _, err := m.regions(ctx)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, m.o.Budget)
	defer cancel()
	byRegion = map[string][]string{}
	for _, id := range misses {
		if h := hintOf[id]; h != "" && slices.Contains(regions, h) {
			byRegion[h] = append(byRegion[h], id)
		}
	}
	m.prefetchRegions(ctx, byRegion)
	misses = m.locate(ctx, byRegion, misses)
	if len(misses) == 0 {
		return
	}
	// The other regions, until every id is located (the ids found nowhere
	// are asked everywhere: they may be missing).
	var mu sync.Mutex
	remaining := slices.Clone(misses)
	left := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(remaining)
	}
	boundedEach(regions, m.o.Workers, func() bool { return len(left()) == 0 }, func(r string) {
		ids := left()
		if len(ids) == 0 {
			return
		}
		byRegion := map[string][]string{r: ids}
		m.prefetchRegions(ctx, byRegion)
		missing := m.locate(ctx, byRegion, ids)
		mu.Lock()
		defer mu.Unlock()
		remaining = slices.DeleteFunc(remaining, func(id string) bool { return !slices.Contains(missing, id) })
	})
}

// prefetchHintsFirst prefetches ids in their hint regions (HintFirst)
// and returns those not found there.
func (m *MultiRegionInventory) prefetchHintsFirst(ctx context.Context, ids []string, hintOf map[string]string) []string {
	regions, _, err := m.regions(ctx)
	if err != nil {
		return ids
	}
	byRegion := map[string][]string{}
	var hinted []string
	for _, id := range ids {
		if h := hintOf[id]; h != "" && slices.Contains(regions, h) {
			byRegion[h] = append(byRegion[h], id)
			hinted = append(hinted, id)
		}
	}
	if len(hinted) == 0 {
		return ids
	}
	ctx, cancel := context.WithTimeout(ctx, m.o.Budget)
	defer cancel()
	m.prefetchRegions(ctx, byRegion)
	notFound := m.locate(ctx, byRegion, hinted)
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool {
		return hintOf[id] != "" && slices.Contains(hinted, id) && !slices.Contains(notFound, id)
	})
}

// PrefetchRefresh refreshes ids, each in the region it was last found in
// (the home region for the others), with as few calls as the regional
// inventories allow (one per region and chunk when they are
// CachedInventories over BulkInventories), so that the Refreshes that
// follow are answered from their caches. It is best effort.
func (m *MultiRegionInventory) PrefetchRefresh(ctx context.Context, ids []string) {
	byRegion := map[string][]string{}
	for _, id := range ids {
		if id == "" {
			continue
		}
		r, ok := m.location(id)
		if !ok {
			r = m.o.HomeRegion
		}
		byRegion[r] = append(byRegion[r], id)
	}
	regions := make([]string, 0, len(byRegion))
	for r := range byRegion {
		regions = append(regions, r)
	}
	slices.Sort(regions)
	boundedEach(regions, m.o.Workers, func() bool { return false }, func(r string) {
		inv := m.home
		if r != m.o.HomeRegion {
			inv = m.inventory(r)
		}
		if rp, ok := inv.(RefreshPrefetcher); ok {
			rp.PrefetchRefresh(ctx, byRegion[r])
		}
	})
}

// prefetchRegions prefetches ids per region, Workers regions at a time.
func (m *MultiRegionInventory) prefetchRegions(ctx context.Context, byRegion map[string][]string) {
	regions := make([]string, 0, len(byRegion))
	for r := range byRegion {
		regions = append(regions, r)
	}
	slices.Sort(regions)
	boundedEach(regions, m.o.Workers, func() bool { return false }, func(r string) {
		if pf, ok := m.inventory(r).(Prefetcher); ok {
			pf.Prefetch(ctx, byRegion[r])
		}
	})
}

// locate remembers where the prefetched ids were found, from the regional
// caches, and returns the ids found nowhere.
func (m *MultiRegionInventory) locate(ctx context.Context, byRegion map[string][]string, ids []string) []string {
	found := map[string]bool{}
	for r, rids := range byRegion {
		inv := m.inventory(r)
		if _, ok := inv.(Prefetcher); !ok {
			continue // nothing was warmed: the lookups will search
		}
		for _, id := range rids {
			if found[id] {
				continue
			}
			if _, ok, err := inv.Lookup(ctx, id); err == nil && ok {
				found[id] = true
				m.remember(id, r)
			}
		}
	}
	return slices.DeleteFunc(ids, func(id string) bool { return found[id] })
}

// regions returns the searched regions other than home, and the enabled
// regions the restriction leaves out.
func (m *MultiRegionInventory) regions(ctx context.Context) (search, excluded []string, err error) {
	m.regionsMu.Lock()
	defer m.regionsMu.Unlock()
	if m.known {
		return m.searchSet, m.excluded, nil
	}
	if m.regionsErr != nil && m.o.Now().Sub(m.regionsAt) < DefaultRegionsRetry {
		return nil, nil, m.regionsErr
	}
	m.count(func(s *RegionStats) { s.RegionsCalls++ })
	enabled, err := m.o.Regions(ctx)
	if err == nil && len(enabled) == 0 {
		err = errors.New("no enabled region")
	}
	if err != nil {
		m.regionsErr, m.regionsAt = err, m.o.Now()
		return nil, nil, err
	}
	search, excluded = []string{}, []string{}
	for _, r := range enabled {
		switch {
		case r == m.o.HomeRegion || slices.Contains(search, r) || slices.Contains(excluded, r):
		case len(m.o.Allowed) == 0 || slices.Contains(m.o.Allowed, r):
			search = append(search, r)
		default:
			excluded = append(excluded, r)
		}
	}
	slices.Sort(search)
	slices.Sort(excluded)
	m.searchSet, m.excluded, m.known, m.regionsErr = search, excluded, true, nil
	return search, excluded, nil
}

// inventory returns the inventory of region r.
func (m *MultiRegionInventory) inventory(r string) Inventory {
	m.mu.Lock()
	defer m.mu.Unlock()
	inv, ok := m.regional[r]
	if !ok {
		r = strings.Clone(r) // kept for good: do not pin the payload a record's region came from
		inv = m.o.Inventory(r)
		m.regional[r] = inv
	}
	return inv
}

func (m *MultiRegionInventory) location(id string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.locations[id]
	return r, ok
}

// remember records that id lives in r, evicting arbitrary entries to stay
// within MaxLocations (a forgotten instance costs one search).
func (m *MultiRegionInventory) remember(id, r string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.locations[id]; !ok {
		for k := range m.locations {
			if len(m.locations) < m.o.MaxLocations {
				break
			}
			delete(m.locations, k)
		}
	}
	m.locations[strings.Clone(id)] = r
}

func (m *MultiRegionInventory) forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.locations, id)
}

func (m *MultiRegionInventory) count(f func(*RegionStats)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.stats)
}
