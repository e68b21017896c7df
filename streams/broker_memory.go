package streams

import (
	"context"
	"sync/atomic"
)

// MemoryBroker is the in-process broker: one instance, no second program.
type MemoryBroker struct {
	deliver atomic.Pointer[func([]Update)]
}

// NewMemoryBroker makes the in-process broker.
func NewMemoryBroker() *MemoryBroker { return &MemoryBroker{} }

// Publish delivers the batch at once.
func (m *MemoryBroker) Publish(_ context.Context, batch []Update) error {
	if d := m.deliver.Load(); d != nil {
		(*d)(batch)
	}
	return nil
}

// Run records where to deliver and waits for ctx.
func (m *MemoryBroker) Run(ctx context.Context, deliver func([]Update)) {
	m.deliver.Store(&deliver)
	<-ctx.Done()
}

// Healthy is always nil.
func (m *MemoryBroker) Healthy() error { return nil }
