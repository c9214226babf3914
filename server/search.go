package server

import (
	"context"
	"errors"
	"sync"
	"unicode/utf8"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/fulltext"
)

// Bounds of a Search frame; docs/protocol.md states them.
const (
	maxSearchQuery = 256 // bytes
	maxSearchTerms = 8
	searchLimit    = 20 // the page size when the client names none
	maxSearchLimit = 50
)

// searchGate admits searches: at most max at once on the server and one at
// a time per user; past that a search is answered BUSY at once. A search
// holds a worker while it runs, so the bound keeps a flood of searches from
// taking the workers and the CPU that sends need.
type searchGate struct {
	mu      sync.Mutex
	max     int
	running int
	users   map[int64]struct{}
}

func newSearchGate(max int) *searchGate {
	return &searchGate{max: max, users: make(map[int64]struct{})}
}

func (g *searchGate) enter(user int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running >= g.max {
		return false
	}
	if _, busy := g.users[user]; busy {
		return false
	}
	g.running++
	g.users[user] = struct{}{}
	return true
}

func (g *searchGate) exit(user int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running--
	delete(g.users, user)
}

// handleSearch searches the caller's messages (storage.Searcher): bounded
// query, page and work (SearchMaxReads), admitted by the search gate, within
// SearchTimeout.
func (s *Server) handleSearch(c *call, q *protocol.Search) (any, error) {
	ctx, user := c.ctx, c.user
	sr, ok := s.store.(storage.Searcher)
	if !ok {
		return nil, refuse(protocol.CodeUnavailable, "this server's store cannot search")
	}
	switch {
	case len(q.Query) > maxSearchQuery || !utf8.ValidString(q.Query):
		return nil, refuse(protocol.CodeBadBody, "query must be valid UTF-8 of at most 256 bytes")
	case len(fulltext.Terms(q.Query)) == 0:
		return nil, refuse(protocol.CodeBadBody, "query has no letters or digits")
	case len(fulltext.Terms(q.Query)) > maxSearchTerms:
		return nil, refuse(protocol.CodeBadBody, "query has more than 8 words")
	case q.BeforeConv != "" && !validConv(q.BeforeConv):
		return nil, refuse(protocol.CodeBadBody, "before_conv is not a conversation id")
	}
	if q.Conv != "" {
		if err := s.member(ctx, user, q.Conv); err != nil {
			return nil, err
		}
	}
	limit := int(q.Limit)
	switch {
	case limit == 0:
		limit = searchLimit
	case limit > maxSearchLimit:
		limit = maxSearchLimit
	}
	if !s.searches.enter(user) {
		return nil, refuse(protocol.CodeBusy, "too many searches running; retry")
	}
	defer s.searches.exit(user)
	if h := s.searching; h != nil {
		h()
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.SearchTimeout)
	defer cancel()
	page, err := sr.Search(ctx, fulltext.Query{
		User: user, Text: q.Query, Conv: q.Conv, Limit: limit, MaxReads: s.cfg.SearchMaxReads,
		Before: fulltext.Cursor{Time: q.BeforeTime, Conv: q.BeforeConv, Seq: q.BeforeSeq},
	})
	switch {
	case errors.Is(err, fulltext.ErrTooBroad):
		return nil, refuse(protocol.CodeSearchTooBroad, "the query matches too much; add words")
	case errors.Is(err, context.DeadlineExceeded):
		return nil, refuse(protocol.CodeTimeout, "search timed out; add words")
	case err != nil:
		return nil, err
	}
	msgs, more := page.Messages, page.More
	if kept := fitReply(msgs); kept < len(msgs) {
		msgs, more = msgs[:kept], true
	}
	res := &protocol.SearchResult{Messages: nonNil(msgs), HasMore: more}
	if more && len(msgs) > 0 {
		last := &msgs[len(msgs)-1]
		res.NextTime, res.NextConv, res.NextSeq = last.ServerTime, last.Conv, last.Seq
	}
	return res, nil
}

func validConv(conv string) bool {
	_, ok := protocol.ParseConv(conv)
	return ok
}
