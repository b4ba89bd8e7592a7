// Package tokenbucket is the rate limit the detector puts on its own AWS
// calls (EC2 lookups per region, STS AssumeRole per container): a token
// bucket that reserves in advance, so that concurrent callers queue up at
// the configured rate instead of being refused, up to a wait they choose.
package tokenbucket

import "time"

// Bucket holds Burst tokens and gains Rate tokens a second. It is not safe
// for concurrent use: its owner calls it with its own lock held.
type Bucket struct {
	rate   float64
	burst  int
	tokens float64
	last   time.Time
}

// New returns a full bucket. A negative rate means no limit.
func New(rate float64, burst int) *Bucket {
	return &Bucket{rate: rate, burst: burst, tokens: float64(burst)}
}

// Reserve takes a token at now and returns how long the caller must wait
// before its call. When the token would come later than maxWait, ok is
// false and nothing is taken. Tokens are reserved in advance (the bucket
// may go negative), so the n-th of many concurrent callers waits about
// n/rate.
func (b *Bucket) Reserve(now time.Time, maxWait time.Duration) (wait time.Duration, ok bool) {
	if b.rate < 0 {
		return 0, true
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(float64(b.burst), b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		wait = time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
		if wait > maxWait {
			return 0, false
		}
	}
	b.tokens--
	return wait, true
}
