package router

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	rocketmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

// RocketMQBus is the Bus of a cluster on Apache RocketMQ: one topic for
// the whole cluster, the receiving node's name as the message tag, and a
// consumer group per node that subscribes to its own tag only. A group
// message for members on three nodes is three MQ messages, each carrying
// the list of that node's members.
type RocketMQBus struct {
	cfg      RocketMQConfig
	producer rocketmq.Producer

	mu       sync.Mutex
	consumer rocketmq.PushConsumer
}

// RocketMQConfig configures NewRocketMQBus.
type RocketMQConfig struct {
	NameServers []string // host:port of the name servers
	Topic       string   // default "PARLEY_NODES"
	Node        string   // this node's name: the tag it consumes
	Logger      *slog.Logger
}

var _ Bus = (*RocketMQBus)(nil)

var quietRocketMQ sync.Once

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

// NewRocketMQBus starts a producer; Listen starts the consumer.
func NewRocketMQBus(cfg RocketMQConfig) (*RocketMQBus, error) {
	quietRocketMQ.Do(func() { rlog.SetLogLevel("error") })
	if cfg.Topic == "" {
		cfg.Topic = "PARLEY_NODES"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p, err := rocketmq.NewProducer(
		producer.WithNameServer(cfg.NameServers),
		producer.WithGroupName("parley-producer-"+tagOf(cfg.Node)),
		producer.WithInstanceName("parley-p-"+tagOf(cfg.Node)),
		producer.WithRetry(2),
	)
	if err != nil {
		return nil, fmt.Errorf("router: rocketmq producer: %w", err)
	}
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("router: rocketmq producer: %w", err)
	}
	return &RocketMQBus{cfg: cfg, producer: p}, nil
}

// Send implements Bus.
func (b *RocketMQBus) Send(ctx context.Context, node string, env Envelope) error {
	body, err := env.encode()
	if err != nil {
		return err
	}
	res, err := b.producer.SendSync(ctx, primitive.NewMessage(b.cfg.Topic, body).WithTag(tagOf(node)))
	if err != nil {
		return fmt.Errorf("router: rocketmq send to %s: %w", node, err)
	}
	if res.Status != primitive.SendOK {
		return fmt.Errorf("router: rocketmq send to %s: status %d", node, res.Status)
	}
	return nil
}

// Broadcast implements Bus.
func (b *RocketMQBus) Broadcast(ctx context.Context, nodes []string, env Envelope) error {
	var first error
	for _, n := range nodes {
		if err := b.Send(ctx, n, env); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Listen implements Bus: a push consumer of this node's tag, in a consumer
// group of its own, from the first offset it has not consumed.
func (b *RocketMQBus) Listen(handle func(Envelope)) error {
	// The broker creates a topic on its first message, and a consumer
	// cannot start on a topic that does not exist yet.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.producer.SendSync(ctx, primitive.NewMessage(b.cfg.Topic, []byte("{}")).WithTag("parley-probe")); err != nil {
		return fmt.Errorf("router: rocketmq topic %s: %w", b.cfg.Topic, err)
	}
	c, err := rocketmq.NewPushConsumer(
		consumer.WithNameServer(b.cfg.NameServers),
		consumer.WithGroupName("parley-node-"+tagOf(b.cfg.Node)),
		consumer.WithInstance("parley-c-"+tagOf(b.cfg.Node)),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithConsumerModel(consumer.Clustering),
	)
	if err != nil {
		return fmt.Errorf("router: rocketmq consumer: %w", err)
	}
	err = c.Subscribe(b.cfg.Topic, consumer.MessageSelector{Type: consumer.TAG, Expression: tagOf(b.cfg.Node)},
		func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			for _, m := range msgs {
				env, err := decodeEnvelope(m.Body)
				if err != nil {
					b.cfg.Logger.Warn("rocketmq: bad envelope dropped", "err", err)
					continue
				}
				handle(env)
			}
			return consumer.ConsumeSuccess, nil
		})
	if err != nil {
		return fmt.Errorf("router: rocketmq subscribe: %w", err)
	}
	if err := c.Start(); err != nil {
		return fmt.Errorf("router: rocketmq consumer: %w", err)
	}
	b.mu.Lock()
	b.consumer = c
	b.mu.Unlock()
	return nil
}

// Close implements Bus.
func (b *RocketMQBus) Close() error {
	b.mu.Lock()
	c := b.consumer
	b.mu.Unlock()
	if c != nil {
		_ = c.Shutdown()
	}
	return b.producer.Shutdown()
}
