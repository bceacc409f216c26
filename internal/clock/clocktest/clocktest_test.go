package clocktest

import (
	"slices"
	"testing"
	"time"
)

func TestAdvanceRunsDueFunctionsInOrder(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := New(start)
	var got []string
	var at []time.Duration
	note := func(name string) func() {
		return func() { got = append(got, name); at = append(at, c.Now().Sub(start)) }
	}
	c.AfterFunc(3*time.Second, note("c"))
	c.AfterFunc(time.Second, func() {
		note("a")()
		c.AfterFunc(time.Second, note("b")) // due at 2 s, inside the advance
	})
	stopped := c.AfterFunc(2*time.Second, note("never"))
	if !stopped.Stop() {
		t.Fatal("expected Stop of a pending function to report true")
	}
	c.AfterFunc(10*time.Second, note("later"))

	c.Advance(3 * time.Second)
	if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("expected %v to run, got %v", want, got)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}; !slices.Equal(at, want) {
		t.Fatalf("expected them at %v, got %v", want, at)
	}
	if c.Now() != start.Add(3*time.Second) {
		t.Fatalf("expected the clock at +3s, got %s", c.Now().Sub(start))
	}
	if c.Pending() != 1 {
		t.Fatalf("expected 1 pending function, got %d", c.Pending())
	}
	if stopped.Stop() {
		t.Fatal("expected a second Stop to report false")
	}
}
