package client

import (
	"context"
	"sync"
	"time"

	"github.com/parleyim/parley/protocol"
)

// Receipts, typing and the user's state of conversations.

// receivedDelay is how long the client collects delivered messages before
// it tells their senders (one Received per conversation).
const receivedDelay = 100 * time.Millisecond

// maxReceivedConvs bounds the conversations waiting for a Received.
const maxReceivedConvs = 1024

// received holds, per direct conversation, the highest seq handed to
// Messages and not yet told to the server.
type received struct {
	mu   sync.Mutex
	m    map[string]uint64
	wake chan struct{} // cap 1
}

func newReceived() *received {
	return &received{m: make(map[string]uint64), wake: make(chan struct{}, 1)}
}

// note records that m reached the application.
func (c *Client) noteReceived(m *protocol.Message) {
	if !c.opts.DeliveryReceipts || m.To == 0 || m.From == c.UserID() {
		return
	}
	r := c.recv
	r.mu.Lock()
	if _, ok := r.m[m.Conv]; ok || len(r.m) < maxReceivedConvs {
		r.m[m.Conv] = max(r.m[m.Conv], m.Seq)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// receiptLoop sends the Received frames, a few at a time.
func (c *Client) receiptLoop() {
	defer c.wg.Done()
	r := c.recv
	batch := make(map[string]uint64)
	for {
		select {
		case <-r.wake:
		case <-c.closeCh:
			return
		case <-c.ctx.Done():
			return
		}
		select {
		case <-time.After(receivedDelay):
		case <-c.closeCh:
			return
		}
		r.mu.Lock()
		batch, r.m = r.m, batch
		r.mu.Unlock()
		for conv, seq := range batch {
			// A refusal (RATE_LIMITED) loses one receipt; the next
			// message of the conversation carries the seq again.
			_ = c.ok(c.ctx, protocol.TypeReceived, &protocol.Received{Conv: conv, Seq: seq})
		}
		clear(batch)
	}
}

// Typing tells the other members of conv that the user types (stop false)
// or stopped. Call it again every few seconds while typing goes on: the
// indicator ends by itself (TypingEvent.Until).
func (c *Client) Typing(ctx context.Context, conv string, stop bool) error {
	return c.ok(ctx, protocol.TypeTyping, &protocol.Typing{Conv: conv, Stop: stop})
}

// Received tells the other user of a direct conversation that this device
// holds its messages up to seq. Options.DeliveryReceipts does it by itself.
func (c *Client) Received(ctx context.Context, conv string, seq uint64) error {
	return c.ok(ctx, protocol.TypeReceived, &protocol.Received{Conv: conv, Seq: seq})
}

// Receipts asks for the read state of conv: the other user's read and
// delivery cursors in a direct conversation; the read counts of seqs in a
// group.
func (c *Client) Receipts(ctx context.Context, conv string, seqs ...uint64) (protocol.ReceiptList, error) {
	var res protocol.ReceiptList
	_, err := c.Do(ctx, protocol.TypeReceipts, &protocol.Receipts{Conv: conv, Seqs: seqs}, &res)
	return res, err
}

// Readers lists the members who have read message seq of conv.
func (c *Client) Readers(ctx context.Context, conv string, seq uint64) ([]int64, error) {
	var res protocol.ReaderList
	_, err := c.Do(ctx, protocol.TypeReaders, &protocol.Readers{Conv: conv, Seq: seq}, &res)
	return res.Users, err
}

// SetConvPrefs sets the user's muted and pinned flags of conv; the user's
// other devices get a ConvState notice.
func (c *Client) SetConvPrefs(ctx context.Context, conv string, muted, pinned bool) error {
	return c.ok(ctx, protocol.TypeConvPrefs, &protocol.ConvPrefs{Conv: conv, Muted: muted, Pinned: pinned})
}

// Settings reads the user's settings.
func (c *Client) Settings(ctx context.Context) (protocol.SettingsInfo, error) {
	var res protocol.SettingsInfo
	_, err := c.Do(ctx, protocol.TypeSettings, &protocol.Settings{}, &res)
	return res, err
}

// SetReceiptsOff turns sending read receipts off (or on again).
func (c *Client) SetReceiptsOff(ctx context.Context, off bool) (protocol.SettingsInfo, error) {
	var res protocol.SettingsInfo
	_, err := c.Do(ctx, protocol.TypeSettings, &protocol.Settings{Set: true, ReceiptsOff: off}, &res)
	return res, err
}

// ConversationsPage lists the user's conversations after the entry
// (afterTime, afterConv), most recent first: pass the LastTime and Conv of
// the previous page's last entry, or 0 and "" for the first page.
func (c *Client) ConversationsPage(ctx context.Context, limit uint32, afterTime int64, afterConv string) (protocol.ConversationList, error) {
	var res protocol.ConversationList
	_, err := c.Do(ctx, protocol.TypeConversations, &protocol.Conversations{Limit: limit, AfterTime: afterTime, AfterConv: afterConv}, &res)
	return res, err
}
