package client

import (
	"context"

	"github.com/parleyim/parley/protocol"
)

// Search finds one's messages holding every word of q.Query, newest first
// (q.Conv: in one conversation only). For the next page pass NextSearch(q,
// res) while res.HasMore.
func (c *Client) Search(ctx context.Context, q protocol.Search) (protocol.SearchResult, error) {
	var res protocol.SearchResult
	_, err := c.Do(ctx, protocol.TypeSearch, &q, &res)
	return res, err
}

// NextSearch is the query of the page after res.
func NextSearch(q protocol.Search, res protocol.SearchResult) protocol.Search {
	q.BeforeTime, q.BeforeConv, q.BeforeSeq = res.NextTime, res.NextConv, res.NextSeq
	return q
}
