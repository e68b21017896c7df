package streams

import "context"

// Broker carries device and unit updates between instances. The embedded
// default (MemoryBroker) hands them to this instance alone; RedisBroker
// lets a client of any instance see what every instance ingested.
type Broker interface {
	// Publish sends a batch to every instance, this one included.
	Publish(ctx context.Context, batch []Update) error
	// Run delivers the batches published by every instance until ctx ends.
	Run(ctx context.Context, deliver func([]Update))
	// Healthy is nil while batches flow between instances.
	Healthy() error
}
