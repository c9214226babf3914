// Package rocketmq is the router.Bus of a cluster on Apache RocketMQ.
package rocketmq

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
//
// A watchdog (watch.go) starts the consumer again when the broker comes
// back from an outage, or when it stops consuming: the client's push
// consumer would otherwise take seconds to resume by itself.
type Bus struct {
	cfg      Config
	producer mq.Producer
	inc      uint64
	ctx      context.Context // ends at Close
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the watchdog

	mu       sync.Mutex
	consumer mq.PushConsumer
	seqr     *router.Sequencer
	closed   bool

	consumed  atomic.Int64  // when a message was last consumed (unix ns)
	probeSeen atomic.Uint64 // the highest own probe consumed
	restarts  atomic.Uint64
	// compressed counts the batches sent compressed (Config.CompressOver).
	compressed atomic.Uint64

	qmu     sync.Mutex
	queueAt map[queueKey]time.Time // when a message was last consumed from each queue
}

// queueKey names one queue of the topic.
type queueKey struct {
	broker string
	id     int
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
	// ProbeEvery is how often a listening bus publishes a probe to its own
	// tag, to see that the broker takes messages and that its consumer
	// consumes them (default 1s). While probes fail they are retried every
	// 100-250 ms.
	ProbeEvery time.Duration
	// StuckAfter is how long a probe may stay unconsumed, with nothing
	// else consumed from its queue either, before the consumer is started
	// again (default 2s).
	StuckAfter time.Duration
	// CompressOver is the size from which a batch is sent compressed
	// (RocketMQ's zlib, which the consumer undoes); 0, the default, never
	// compresses. RocketMQ's clients compress from 4 KiB: a batch of a
	// busy node is that large, and compressing and decompressing it took
	// 11 % of the nodes' CPU at 10,400 messages a second, where the bytes
	// cross a LAN (or loopback) and the broker keeps them for days at most
	// (72 hours by default).
	CompressOver int
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
	if cfg.ProbeEvery <= 0 {
		cfg.ProbeEvery = time.Second
	}
	if cfg.StuckAfter <= 0 {
		cfg.StuckAfter = 2 * time.Second
	}
	p, err := mq.NewProducer(
		producer.WithNameServer(cfg.NameServers),
		producer.WithGroupName("parley-producer-"+tagOf(cfg.Node)),
		producer.WithInstanceName("parley-p-"+tagOf(cfg.Node)),
		producer.WithQueueSelector(producer.NewHashQueueSelector()),
		producer.WithRetry(1),
		producer.WithCompressMsgBodyOverHowmuch(compressOver(cfg.CompressOver)),
	)
	if err != nil {
		return nil, fmt.Errorf("rocketmq: producer: %w", err)
	}
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("rocketmq: producer: %w", err)
	}
	var r [8]byte
	_, _ = rand.Read(r[:])
	b := &Bus{cfg: cfg, producer: p, inc: binary.LittleEndian.Uint64(r[:]), queueAt: map[queueKey]time.Time{}}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
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
	if msg.Compress {
		b.compressed.Add(1)
	}
	return nil
}

// Compressed is how many batches were sent compressed (Config.CompressOver).
func (b *Bus) Compressed() uint64 { return b.compressed.Load() }

// compressOver is the producer's compression threshold for
// Config.CompressOver.
func compressOver(n int) int {
	if n <= 0 {
		return math.MaxInt
	}
	return n
}

// Listen implements router.Bus: a push consumer of this node's tag, in a
// consumer group of its own, from the first offset it has not consumed,
// and the watchdog that starts it again when it stops consuming
// (watch.go).
func (b *Bus) Listen(handle func([]router.Envelope)) error {
	if b.isClosed() {
		return router.ErrClosed
	}
	// The broker creates a topic on its first message, and a consumer
	// cannot start on a topic that does not exist yet.
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := b.Ping(ctx); err != nil {
		return fmt.Errorf("rocketmq: topic %s: %w", b.cfg.Topic, err)
	}
	// The broker tells the name server of a new topic a moment after
	// creating it, and a consumer does not start before the name server
	// knows the topic: try again until it does.
	seqr := router.NewSequencer(time.Second, handle)
	c, err := b.start(ctx, seqr)
	if err != nil {
		seqr.Close()
		return fmt.Errorf("rocketmq: consumer: %w", err)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		_ = c.Shutdown()
		seqr.Close()
		return router.ErrClosed
	}
	b.consumer, b.seqr = c, seqr
	b.wg.Add(1)
	b.mu.Unlock()
	go b.watch(seqr)
	return nil
}

// start starts a consumer, trying again every 100-250 ms until one starts
// or ctx ends.
func (b *Bus) start(ctx context.Context, seqr *router.Sequencer) (mq.PushConsumer, error) {
	for tries := 1; ; tries++ {
		c, err := b.consume(seqr)
		if err == nil {
			return c, nil
		}
		if tries == 1 || tries%20 == 0 {
			b.cfg.Logger.Info("rocketmq: consumer does not start yet", "tries", tries, "err", err)
		}
		t := time.NewTimer(retryWait())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
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

// The message properties that order batches, and the number of a probe
// (watch.go).
const (
	propFrom  = "pfrom"
	propInc   = "pinc"
	propSeq   = "pseq"
	propProbe = "pprobe"
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
			now := time.Now()
			b.consumed.Store(now.UnixNano())
			if len(msgs) > 0 && msgs[0].Queue != nil {
				b.consumedFrom(queueKey{msgs[0].Queue.BrokerName, msgs[0].Queue.QueueId}, now)
			}
			for _, m := range msgs {
				if p := m.GetProperty(propProbe); p != "" {
					b.sawProbe(m.GetProperty(propInc), p)
					continue
				}
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
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait() // the watchdog, which may be starting a consumer
	b.mu.Lock()
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
