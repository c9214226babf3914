// Package rocketmq is the router.Bus of a cluster on Apache RocketMQ.
package rocketmq

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	mq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/parleyim/parley/router"
)

// Bus is the router.Bus of a cluster on RocketMQ: one topic for the whole
// cluster, the receiving node's name as the message tag, and a consumer
// group per node that subscribes to its own tag only. A batch is one MQ
// message (router.AppendBatch).
//
// Order: every message carries its sender's name, the incarnation of its
// bus (random, per process) and the batch's seq as properties, and the
// receiver puts them back in order with a router.Sequencer. The consumer
// itself is the concurrent one: the client's orderly consumer (v2.1.2)
// reads its queue without its lock, a data race. Messages from A to B
// carry the sharding key "A>B", so a hash queue selector keeps them on one
// queue and they rarely need reordering.
type Bus struct {
	cfg      Config
	producer mq.Producer
	inc      uint64
	seqr     *router.Sequencer

	mu       sync.Mutex
	consumer mq.PushConsumer
	closed   bool
}

// Config configures New.
type Config struct {
	NameServers []string // host:port of the name servers
	Topic       string   // default "PARLEY_NODES"
	Node        string   // this node's name: the tag it consumes
	Logger      *slog.Logger
	// ConsumeLag, if set, is told how long each consumed batch took from
	// its publish (the broker's born timestamp) to its consumption here.
	ConsumeLag func(time.Duration)
}

var _ router.Bus = (*Bus)(nil)

var quiet sync.Once

// tagOf turns a node name into a valid tag and consumer group name: only
// letters, digits, '-' and '_' (so "10.0.0.7:7070" is "10_0_0_7_7070").
func tagOf(node string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, node)
}

// New starts a producer; Listen starts the consumer.
func New(cfg Config) (*Bus, error) {
	quiet.Do(func() { rlog.SetLogLevel("error") })
	if cfg.Topic == "" {
		cfg.Topic = "PARLEY_NODES"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p, err := mq.NewProducer(
		producer.WithNameServer(cfg.NameServers),
		producer.WithGroupName("parley-producer-"+tagOf(cfg.Node)),
		producer.WithInstanceName("parley-p-"+tagOf(cfg.Node)),
		producer.WithQueueSelector(producer.NewHashQueueSelector()),
		producer.WithRetry(1),
	)
	if err != nil {
		return nil, fmt.Errorf("rocketmq: producer: %w", err)
	}
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("rocketmq: producer: %w", err)
	}
	var r [8]byte
	_, _ = rand.Read(r[:])
	return &Bus{cfg: cfg, producer: p, inc: binary.LittleEndian.Uint64(r[:])}, nil
}

func (b *Bus) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Send implements router.Bus.
func (b *Bus) Send(ctx context.Context, node string, seq uint64, envs []router.Envelope) error {
	if b.isClosed() {
		return router.ErrClosed
	}
	msg := primitive.NewMessage(b.cfg.Topic, router.AppendBatch(nil, envs)).
		WithTag(tagOf(node)).
		WithShardingKey(b.cfg.Node + ">" + node)
	msg.WithProperty(propFrom, b.cfg.Node)
	msg.WithProperty(propInc, strconv.FormatUint(b.inc, 36))
	msg.WithProperty(propSeq, strconv.FormatUint(seq, 36))
	res, err := b.producer.SendSync(ctx, msg)
	if err != nil {
		return fmt.Errorf("rocketmq: send to %s: %w", node, err)
	}
	if res.Status != primitive.SendOK {
		return fmt.Errorf("rocketmq: send to %s: status %d", node, res.Status)
	}
	return nil
}

// Listen implements router.Bus: an orderly push consumer of this node's
// tag, in a consumer group of its own, from the first offset it has not
// consumed.
func (b *Bus) Listen(handle func([]router.Envelope)) error {
	if b.isClosed() {
		return router.ErrClosed
	}
	// The broker creates a topic on its first message, and a consumer
	// cannot start on a topic that does not exist yet.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Ping(ctx); err != nil {
		return fmt.Errorf("rocketmq: topic %s: %w", b.cfg.Topic, err)
	}
	// The broker tells the name server of a new topic a moment after
	// creating it, and a consumer does not start before the name server
	// knows the topic: try again until it does.
	seqr := router.NewSequencer(time.Second, handle)
	var c mq.PushConsumer
	for {
		var err error
		if c, err = b.consume(seqr); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			seqr.Close()
			return fmt.Errorf("rocketmq: consumer: %w", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	b.mu.Lock()
	b.consumer, b.seqr = c, seqr
	b.mu.Unlock()
	return nil
}

// Ping tells whether the broker takes a message within 2 s: it sends an
// empty batch under a tag no node consumes. For /readyz.
func (b *Bus) Ping(ctx context.Context) error {
	if b.isClosed() {
		return router.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	probe := primitive.NewMessage(b.cfg.Topic, router.AppendBatch(nil, nil)).WithTag("parley-probe")
	if _, err := b.producer.SendSync(ctx, probe); err != nil {
		return fmt.Errorf("rocketmq: the broker takes no message: %w", err)
	}
	return nil
}

// The message properties that order batches.
const (
	propFrom = "pfrom"
	propInc  = "pinc"
	propSeq  = "pseq"
)

// consume starts a push consumer of this node's tag.
func (b *Bus) consume(seqr *router.Sequencer) (mq.PushConsumer, error) {
	c, err := mq.NewPushConsumer(
		consumer.WithNameServer(b.cfg.NameServers),
		consumer.WithGroupName("parley-node-"+tagOf(b.cfg.Node)),
		consumer.WithInstance("parley-c-"+tagOf(b.cfg.Node)),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithConsumerModel(consumer.Clustering),
	)
	if err != nil {
		return nil, err
	}
	err = c.Subscribe(b.cfg.Topic, consumer.MessageSelector{Type: consumer.TAG, Expression: tagOf(b.cfg.Node)},
		func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			for _, m := range msgs {
				if b.cfg.ConsumeLag != nil && m.BornTimestamp > 0 {
					b.cfg.ConsumeLag(time.Since(time.UnixMilli(m.BornTimestamp)))
				}
				envs, err := router.DecodeBatch(m.Body)
				inc, err1 := strconv.ParseUint(m.GetProperty(propInc), 36, 64)
				seq, err2 := strconv.ParseUint(m.GetProperty(propSeq), 36, 64)
				if err := errors.Join(err, err1, err2); err != nil {
					b.cfg.Logger.Warn("rocketmq: bad batch dropped", "err", err)
					continue
				}
				seqr.Add(m.GetProperty(propFrom), inc, seq, envs)
			}
			return consumer.ConsumeSuccess, nil
		})
	if err != nil {
		_ = c.Shutdown()
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, err // Start shuts the consumer down when it fails
	}
	return c, nil
}

// Close implements router.Bus.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return router.ErrClosed
	}
	b.closed = true
	c, seqr := b.consumer, b.seqr
	b.mu.Unlock()
	if c != nil {
		_ = c.Shutdown()
	}
	if seqr != nil {
		seqr.Close()
	}
	return b.producer.Shutdown()
}
