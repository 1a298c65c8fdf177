package ws

import "context"

// Message is what travels through a channel layer: an encoded JSON payload
// that members receive as one text frame, and a sequence number.
//
// Seq, when non-zero, only grows within a channel (a status version today,
// a per-group message id for history and recovery later); members drop a
// Seq they have already passed, so a late message never overtakes a newer
// one.
type Message struct {
	Payload []byte
	Seq     uint64
	// Origin, when set, is the local client that sent the message; it gets
	// OriginPayload instead of Payload (its own copy, carrying the id it
	// chose). Neither crosses to other processes.
	Origin        *Client
	OriginPayload []byte
}

// Broker is the channel layer (in the Django Channels sense): it carries
// messages published on a channel to every process with members there.
// Every message, local ones too, passes the broker exactly once; the
// broker hands each to the Deliver function it was built with.
type Broker interface {
	// Start begins handing every message carried to deliver. NewHub calls
	// it once, before anything else. A distributed broker calls resync
	// (never concurrently with itself) once its subscriptions may have
	// missed messages: after it (re)subscribes, so the hub can backfill
	// from history.
	Start(deliver Deliver, resync func())
	// Publish sends msg to every subscriber of channel, in every process.
	// Messages published by one goroutine arrive in the order sent.
	Publish(ctx context.Context, channel string, msg Message) error
	// Subscribe and Unsubscribe tell the broker this process has its
	// first member of channel, or no longer any. They never block on the
	// network: a distributed broker applies them in the background.
	Subscribe(channel string)
	Unsubscribe(channel string)
	// Close stops the broker.
	Close() error
}

// Deliver receives what a broker carries: the hub's deliver.
type Deliver func(channel string, msg Message)
