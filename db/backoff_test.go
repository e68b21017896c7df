package db

import (
	"testing"
	"time"
)

func TestBackoffDoublesToCapWithJitter(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, w := range want {
		w *= time.Millisecond
		d := b.Next()
		if d < w*3/4 || d > w*5/4 {
			t.Fatalf("attempt %d: %v, want %v ±25 %%", i, d, w)
		}
	}
	b.Reset()
	if d := b.Next(); d > 125*time.Millisecond {
		t.Fatalf("after Reset: %v", d)
	}
	var zero Backoff
	for i := 0; i < 100; i++ {
		if d := zero.Next(); d <= 0 || d > 5*time.Second*5/4 {
			t.Fatalf("zero value attempt %d: %v", i, d)
		}
	}
}
