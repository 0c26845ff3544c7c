package mdmservice

import (
	"context"
	"sync"
	"time"

	"github.com/pomona-mdm/pomona/problem"
)

// TopicTTL is how long a TopicCache trusts its topic without reading the
// push certificate again. A check-in whose topic differs re-reads at once,
// so a new certificate uploaded on another instance is accepted on its
// first check-in; an old topic may be accepted by another instance for at
// most TopicTTL after the certificate changed (Invalidate ends it at once
// on the instance that saved it).
const TopicTTL = time.Minute

// TopicCache holds the push topic (the push certificate's UID, "Topic" of
// the enrollment profile's MDM payload,
// https://developer.apple.com/documentation/devicemanagement/mdm) that a
// check-in carrying Topic must match. Loading
// it reads and unseals the push certificate, too costly for every
// check-in, so it is loaded at most once per TopicTTL, and again when a
// check-in's topic differs or Invalidate is called.
type TopicCache struct {
	// Load reads the current topic (an error: no push certificate).
	Load func(ctx context.Context) (string, error)
	Now  func() time.Time

	mu     sync.Mutex
	topic  string
	loaded time.Time
	// gen counts Invalidate calls: a Load that began before one read the
	// old certificate, so its topic is not kept (else the old topic would
	// be trusted for another TopicTTL after the certificate changed).
	gen uint64
}

// Invalidate forgets the topic (the push certificate changed), and the
// topic of any Load still in flight.
func (c *TopicCache) Invalidate() {
	c.mu.Lock()
	c.topic, c.loaded = "", time.Time{}
	c.gen++
	c.mu.Unlock()
}

func (c *TopicCache) get(ctx context.Context, fresh bool) (string, error) {
	now := c.Now()
	c.mu.Lock()
	if !fresh && c.topic != "" && now.Sub(c.loaded) < TopicTTL && !now.Before(c.loaded) {
		t := c.topic
		c.mu.Unlock()
		return t, nil
	}
	gen := c.gen
	c.mu.Unlock()
	t, err := c.Load(ctx)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if c.gen == gen {
		c.topic, c.loaded = t, now
	}
	c.mu.Unlock()
	return t, nil
}

// Check accepts topic when it is this server's push topic. Errors:
// Unavailable (no push certificate), Invalid (another topic).
func (c *TopicCache) Check(ctx context.Context, topic string) error {
	for _, fresh := range []bool{false, true} {
		t, err := c.get(ctx, fresh)
		if err != nil {
			return problem.Wrap(problem.Unavailable, err, "no push certificate")
		}
		if t == topic {
			return nil
		}
	}
	return problem.New(problem.Invalid, "topic %q is not this server's push topic", topic)
}
