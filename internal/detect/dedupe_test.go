package detect_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/defenders-cdk/defenders/internal/detect"
)

func TestDeduper(t *testing.T) {
	t.Run("a key is allowed once per window", func(t *testing.T) {
		c := newClock()
		d := detect.NewDeduper(time.Hour, 10, c.Now)
		if !d.Allow("k") || d.Allow("k") {
			t.Fatal("second sighting was not suppressed")
		}
		c.Advance(59 * time.Minute)
		if d.Allow("k") {
			t.Error("suppression ended before the window")
		}
		c.Advance(time.Minute)
		if !d.Allow("k") {
			t.Error("key still suppressed after the window")
		}
	})
	t.Run("repeats do not extend the window", func(t *testing.T) {
		c := newClock()
		d := detect.NewDeduper(time.Hour, 10, c.Now)
		d.Allow("k")
		for range 6 {
			c.Advance(10 * time.Minute)
			d.Allow("k")
		}
		if d.Len() != 1 {
			t.Errorf("Len = %d", d.Len())
		}
	})
	t.Run("a forgotten key is allowed again", func(t *testing.T) {
		d := detect.NewDeduper(time.Hour, 10, nil)
		d.Allow("k")
		d.Forget("k")
		d.Forget("never seen")
		if !d.Allow("k") {
			t.Error("forgotten key suppressed")
		}
	})
	t.Run("the oldest keys are dropped when full", func(t *testing.T) {
		c := newClock()
		d := detect.NewDeduper(time.Hour, 3, c.Now)
		for _, k := range []string{"a", "b", "c", "d"} {
			c.Advance(time.Second)
			d.Allow(k)
		}
		if d.Len() != 3 || !d.Allow("a") || d.Allow("d") {
			t.Errorf("Len = %d; a should be forgotten and d remembered", d.Len())
		}
	})
	t.Run("expired keys are pruned", func(t *testing.T) {
		c := newClock()
		d := detect.NewDeduper(time.Minute, 100, c.Now)
		for i := range 50 {
			d.Allow(fmt.Sprint(i))
		}
		c.Advance(2 * time.Minute)
		d.Allow("new")
		if d.Len() != 1 {
			t.Errorf("Len = %d, want 1", d.Len())
		}
	})
	t.Run("concurrent callers allow a key exactly once", func(t *testing.T) {
		d := detect.NewDeduper(time.Hour, 1000, nil)
		var wg sync.WaitGroup
		var mu sync.Mutex
		allowed := 0
		for range 16 {
			wg.Go(func() {
				for i := range 100 {
					if d.Allow(fmt.Sprint(i)) {
						mu.Lock()
						allowed++
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if allowed != 100 {
			t.Errorf("allowed %d, want 100", allowed)
		}
	})
}
