package detect

import (
	"container/list"
	"strings"
	"sync"
	"time"
)

// Dedupe defaults.
const (
	DefaultDedupeWindow     = time.Hour
	DefaultDedupeMaxEntries = 10000
)

// Deduper suppresses repeated alerts with the same key (Alert.UniqID) within
// a fixed window that starts at the first alert: an attacker making a
// thousand calls from one address yields one alert per window, and a new
// one after the window if the activity goes on. It is in memory, bounded
// (the oldest keys are forgotten first when full, which can only cause an
// extra alert, never a lost one) and safe for concurrent use.
//
// A Deduper lives in one Lambda execution environment (container). Lambda
// runs several containers at once (one per Kinesis shard, one per
// concurrent CloudWatch Logs invocation) and recycles them, so each may
// send its own first alert for a key, and a cold start forgets everything:
// expect occasional duplicates across containers, and deduplicate
// downstream on uniq_id where that matters. Sharing state (DynamoDB
// conditional writes) would remove them at the cost of a call per alert.
type Deduper struct {
	mu     sync.Mutex
	window time.Duration
	max    int
	now    func() time.Time
	order  list.List // of *dedupeEntry, oldest at the back
	keys   map[string]*list.Element
}

type dedupeEntry struct {
	key   string
	first time.Time
}

// NewDeduper returns a Deduper with the given window and bound (defaults
// for values <= 0) and clock (time.Now if nil).
func NewDeduper(window time.Duration, maxEntries int, now func() time.Time) *Deduper {
	if window <= 0 {
		window = DefaultDedupeWindow
	}
	if maxEntries <= 0 {
		maxEntries = DefaultDedupeMaxEntries
	}
	if now == nil {
		now = time.Now
	}
	return &Deduper{window: window, max: maxEntries, now: now, keys: make(map[string]*list.Element)}
}

// Allow reports whether an alert with key should be sent: true the first
// time key is seen in the window, false (suppress) afterwards.
func (d *Deduper) Allow(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	// Expire from the back: entries are in order of first sighting.
	for el := d.order.Back(); el != nil; el = d.order.Back() {
		e := el.Value.(*dedupeEntry)
		if now.Sub(e.first) < d.window {
			break
		}
		d.order.Remove(el)
		delete(d.keys, e.key)
	}
	if _, seen := d.keys[key]; seen {
		return false
	}
	key = strings.Clone(key)
	d.keys[key] = d.order.PushFront(&dedupeEntry{key: key, first: now})
	for len(d.keys) > d.max {
		el := d.order.Back()
		d.order.Remove(el)
		delete(d.keys, el.Value.(*dedupeEntry).key)
	}
	return true
}

// Forget removes key, so that the next alert with it is sent. Use it when
// an allowed alert reached neither its topic nor the dead-letter queue and
// will be retried; an alert in the dead-letter queue will be redriven from
// there and must stay remembered, or every repeat of the attack would be
// dead-lettered again while the topic is down.
func (d *Deduper) Forget(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.keys[key]; ok {
		d.order.Remove(el)
		delete(d.keys, key)
	}
}

// Len returns the number of keys currently remembered.
func (d *Deduper) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.keys)
}
