package client

import (
	"context"
	"errors"
	"time"

	"github.com/parleyim/parley/protocol"
)

// startSync runs a Sync of conv from seq from on cn in a goroutine of its
// own, since the reader that asks for it must stay free to read the reply.
// The tracker has marked the conversation syncing.
func (c *Client) startSync(cn *conn, conv string, from uint64) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.syncConv(cn, conv, from)
	}()
}

// syncConv pages through conv from seq from until the tracker has no gap
// left. A final page that leaves one (a push overtook the server's read) is
// retried after a pause; after maxGapRounds the gap is given up. If cn
// dies the gap stays, and the next login's catch-up fills it.
func (c *Client) syncConv(cn *conn, conv string, from uint64) {
	rounds := 0
	for {
		var res protocol.SyncResult
		err := c.requestOn(cn, protocol.TypeSync, &protocol.Sync{Conv: conv, LastAckID: from, Limit: syncPageSize}, &res)
		c.tmu.Lock()
		if err != nil {
			var pe *protocol.Error
			refused := errors.As(err, &pe) && !transient(pe)
			c.tr.endSync(conv, refused)
			c.flushLocked()
			c.tmu.Unlock()
			cn.log.Warn("sync failed", "conv", conv, "from", from, "err", err)
			return
		}
		next, more, gapLeft := c.tr.applySync(conv, from, res)
		if gapLeft {
			rounds++
			if rounds > maxGapRounds {
				cn.log.Warn("gap not filled by sync; skipped", "conv", conv, "last", next)
				c.tr.endSync(conv, true)
				more = false
			}
		}
		c.flushLocked()
		c.tmu.Unlock()
		if !more {
			return
		}
		if gapLeft && !c.pause(cn, time.Duration(rounds)*gapRetryDelay) {
			c.tmu.Lock()
			c.tr.endSync(conv, false)
			c.tmu.Unlock()
			return
		}
		from = next
	}
}

// resync catches up after a login on cn: the server's conversation list
// sets where each conversation starts (SyncOnLogin) and says which have
// news; those are synced one after another.
func (c *Client) resync(cn *conn) {
	defer c.wg.Done()
	var list protocol.ConversationList
	err := c.requestOn(cn, protocol.TypeConversations, &protocol.Conversations{Limit: convListLimit}, &list)
	if err != nil {
		if cn.cause() != nil {
			return // the next login catches up
		}
		cn.log.Warn("conversation list failed; syncing known conversations", "err", err)
	}
	c.tmu.Lock()
	convs := c.tr.plan(list.Conversations, err == nil, len(list.Conversations) < convListLimit, c.opts.SyncOnLogin)
	c.flushLocked()
	c.tmu.Unlock()
	for _, conv := range convs {
		if cn.cause() != nil {
			return
		}
		c.tmu.Lock()
		from, ok := c.tr.begin(conv)
		c.tmu.Unlock()
		if ok {
			c.syncConv(cn, conv, from)
		}
	}
}

// requestOn is a request of the client's own on cn, bounded by
// RequestTimeout and by the client's end.
func (c *Client) requestOn(cn *conn, t protocol.Type, body, v any) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.RequestTimeout)
	defer cancel()
	r, err := cn.request(ctx, t, body)
	if err != nil {
		return err
	}
	return decodeReply(r, v)
}

// pause waits d unless cn or the client ends first.
func (c *Client) pause(cn *conn, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-cn.done:
	case <-c.ctx.Done():
	}
	return false
}
