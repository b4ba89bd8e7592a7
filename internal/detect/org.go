package detect

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Organisation mode
//
// A central detector in a security account receives, through an
// EventBridge bus of the organisation, the instance sessions of every
// member account. It judges each record against the inventory of the
// account whose credentials made the call (CredentialAccount: the
// userIdentity, never recipientAccountId alone), read through a read-only
// member role that the organisation deploys in every account: the
// Processor's AccountInventories (normally an Organization) gives that
// account's inventory, a MultiRegionInventory over the member role's
// credentials, and the record then goes through the same pipeline as the
// detector's own records (prefetch, judge, re-check after a refresh,
// deduplicate). The detector's own account keeps its own inventory and
// credentials.
//
// Whose inventory cannot be read is never judged OK and never dropped:
//
//   - the member role cannot be assumed (AccessDenied: the member stack is
//     missing in that account, the account left the organisation, or an
//     SCP denies the role): an AccountNotCovered alert (MEDIUM), one per
//     account per dedupe window, every such record counted (NotCovered).
//     Not retried: a retry cannot deploy the missing stack, and an event
//     retried for six hours and then dead-lettered tells nobody which
//     account is blind; the alert does. A brand-new account whose stack is
//     still deploying raises it once too: read it as "not covered yet".
//   - the member credentials could not be obtained for another reason
//     (STS throttling, an STS error or time-out, the detector's own
//     AssumeRole rate limit): the record is Undecided (retried by Lambda,
//     or a Kinesis batch item failure), counted in AccountAccessFailed.
//     These are transient, and a retry a minute later decides the record.
//
// Accounts outside the organisation cannot put events on the central bus
// (its resource policy admits the organisation only), and the member role
// can be assumed only in accounts of the organisation (the detector role's
// policy conditions sts:AssumeRole on aws:ResourceOrgID): a record of an
// outside account that reached the detector anyway (a misconfigured bus
// policy, a log group shared from outside) becomes an AccountNotCovered
// alert, not a verdict against some other account's inventory. A record
// whose recipientAccountId is not the credentials' account is judged
// against the credentials' account, as in every mode (a call on another
// account's resource is recorded for both accounts, so the same call may
// arrive twice; deduplication keeps one alert), and counted
// (RecipientMismatch): many of them from one account are worth a look.

// Errors of AccountInventories.Inventory.
var (
	// ErrAccountDenied is wrapped by the error returned when the member
	// role of an account cannot be assumed (STS answered AccessDenied): the
	// account is not covered, and its records raise AccountNotCovered
	// alerts.
	ErrAccountDenied = errors.New("detect: the member role cannot be assumed in this account (AccessDenied): is the member stack deployed there?")
	// ErrAccountUnavailable is wrapped by the error returned when an
	// account's inventory cannot be reached for a transient reason (STS
	// throttling or failure, the AssumeRole rate limit): its records are
	// Undecided and retried.
	ErrAccountUnavailable = errors.New("detect: the member account's credentials could not be obtained (transient)")
)

// AccountInventories gives the inventory of another account of the
// organisation (organisation mode). Inventory returns an error wrapping
// ErrAccountDenied or ErrAccountUnavailable when the account's inventory
// cannot be read; any other error is treated as ErrAccountUnavailable.
// An implementation may also have a Trim() method, which the Processor
// calls after each batch to bound its memory.
type AccountInventories interface {
	Inventory(ctx context.Context, account string) (Inventory, error)
}

// Sizer is implemented by inventories that can say how many entries they
// cache (CachedInventory, MultiRegionInventory); Organization sums it to
// bound its memory.
type Sizer interface {
	Len() int
}

// Defaults of OrgOptions, sized for the detector's 256 MB function: one
// cached entry costs about 600 bytes of heap, VPC data and the account's
// share of everything else included (TestOrganisationAtScale in
// internal/detectorfn measures it), so DefaultOrgMaxInstances keeps the
// caches of every account together near 24 MB, whatever the number of
// accounts.
const (
	// DefaultOrgMaxAccounts bounds the accounts whose inventories are kept
	// (least recently used evicted first; an evicted account costs its
	// next batch a fresh lookup, its credentials stay cached).
	DefaultOrgMaxAccounts = 1000
	// DefaultOrgMaxInstances bounds the cached entries (instances, negative
	// answers, remembered locations) of all the accounts together.
	DefaultOrgMaxInstances = 40000
	// DefaultOrgRegionMaxEntries is the MaxEntries of each member
	// account-region cache: one account cannot fill the budget alone.
	DefaultOrgRegionMaxEntries = 5000
	// DefaultAccountWorkers bounds the accounts of one batch decided
	// concurrently.
	DefaultAccountWorkers = 8
)

// OrgOptions configures an Organization.
type OrgOptions struct {
	// Access makes sure the account's inventory can be read now, normally
	// by obtaining (or finding cached) credentials of its member role. It
	// returns an error wrapping ErrAccountDenied when the role cannot be
	// assumed; any other error is transient. Required.
	Access func(ctx context.Context, account string) error
	// Inventory builds the inventory of an account (a MultiRegionInventory
	// over the member role's credentials). It must not do I/O; it is
	// called once per account until the account is evicted. Required.
	Inventory func(account string) Inventory
	// MaxAccounts bounds the accounts kept (DefaultOrgMaxAccounts).
	MaxAccounts int
	// MaxInstances bounds the entries cached by all accounts together,
	// counted with Sizer (DefaultOrgMaxInstances). Trim evicts the least
	// recently used accounts until the total is within it; the most
	// recently used account is never evicted, so the bound may be exceeded
	// by one account's caches (at most its regions times
	// DefaultOrgRegionMaxEntries).
	MaxInstances int
}

// OrgStats counts what an Organization did.
type OrgStats struct {
	Accounts       int // accounts whose inventories are kept now
	Entries        int // entries they cached at the last Trim
	Built          int // account inventories built (first use, or again after an eviction)
	Evicted        int // account inventories evicted (MaxAccounts or MaxInstances)
	Denied         int // Inventory calls refused with ErrAccountDenied
	Unavailable    int // Inventory calls failed with ErrAccountUnavailable
	PeakEntries    int // the largest total seen by Trim
	PeakAccounts   int // the most accounts kept at once
	TrimmedEntries int // entries dropped with evicted accounts
}

// Organization keeps the inventories of the organisation's accounts,
// bounded: at most MaxAccounts of them, least recently used evicted first,
// and at most about MaxInstances cached entries in all (Trim). It is safe
// for concurrent use.
type Organization struct {
	o OrgOptions

	mu       sync.Mutex
	lru      list.List // of *orgAccount, most recently used at the front
	accounts map[string]*list.Element
	stats    OrgStats
}

type orgAccount struct {
	id  string
	inv Inventory
}

var _ AccountInventories = (*Organization)(nil)

// NewOrganization returns an empty Organization.
func NewOrganization(o OrgOptions) *Organization {
	if o.MaxAccounts <= 0 {
		o.MaxAccounts = DefaultOrgMaxAccounts
	}
	if o.MaxInstances <= 0 {
		o.MaxInstances = DefaultOrgMaxInstances
	}
	return &Organization{o: o, accounts: make(map[string]*list.Element)}
}

// Inventory checks that account can be read (OrgOptions.Access) and
// returns its inventory, building it on first use.
func (g *Organization) Inventory(ctx context.Context, account string) (Inventory, error) {
	if !ValidAccountID(account) {
		return nil, fmt.Errorf("detect: account %q: %w", account, ErrAccountDenied)
	}
	if err := g.o.Access(ctx, account); err != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
		if errors.Is(err, ErrAccountDenied) {
			g.stats.Denied++
			return nil, err
		}
		g.stats.Unavailable++
		if !errors.Is(err, ErrAccountUnavailable) {
			err = fmt.Errorf("%w: %w", ErrAccountUnavailable, err)
		}
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if el, ok := g.accounts[account]; ok {
		g.lru.MoveToFront(el)
		return el.Value.(*orgAccount).inv, nil
	}
	a := &orgAccount{id: strings.Clone(account), inv: g.o.Inventory(account)}
	g.accounts[a.id] = g.lru.PushFront(a)
	g.stats.Built++
	for len(g.accounts) > g.o.MaxAccounts {
		g.evictLocked(g.lru.Back())
	}
	g.stats.PeakAccounts = max(g.stats.PeakAccounts, len(g.accounts))
	return a.inv, nil
}

// evictLocked drops an account. Called with g.mu held. A batch still
// using its inventory keeps it until the batch ends.
func (g *Organization) evictLocked(el *list.Element) {
	a := el.Value.(*orgAccount)
	g.lru.Remove(el)
	delete(g.accounts, a.id)
	g.stats.Evicted++
}

// Trim evicts the least recently used accounts, never the most recent
// one, until the entries cached by all of them are within MaxInstances.
// The Processor calls it after every batch.
func (g *Organization) Trim() {
	g.mu.Lock()
	els := make([]*list.Element, 0, len(g.accounts))
	for el := g.lru.Front(); el != nil; el = el.Next() {
		els = append(els, el)
	}
	g.mu.Unlock()
	// Count outside the lock: Len takes the inventories' own locks.
	sizes := make([]int, len(els))
	total := 0
	for i, el := range els {
		if s, ok := el.Value.(*orgAccount).inv.(Sizer); ok {
			sizes[i] = s.Len()
			total += sizes[i]
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stats.PeakEntries = max(g.stats.PeakEntries, total)
	for i := len(els) - 1; i > 0 && total > g.o.MaxInstances; i-- {
		a := els[i].Value.(*orgAccount)
		if cur, ok := g.accounts[a.id]; !ok || cur != els[i] {
			continue // evicted meanwhile
		}
		g.evictLocked(els[i])
		total -= sizes[i]
		g.stats.TrimmedEntries += sizes[i]
	}
	g.stats.Entries = total
}

// Stats returns a snapshot of the counters.
func (g *Organization) Stats() OrgStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.Accounts = len(g.accounts)
	return s
}
