package protocol

// Frames of search and expiring messages (0x00C0-0x00CF).

// Frame types of search.
const (
	TypeSearch       Type = 0x00C0 // Search, C→S; answered by SearchResult
	TypeSearchResult Type = 0x00C1 // SearchResult, S→C
)

// Search finds the caller's messages whose text holds every term of Query,
// newest first. Conv limits it to one conversation. A page after the first
// names the last result of the previous page: its server time, conversation
// and seq (the Next fields of SearchResult).
type Search struct {
	Query      string `msgpack:"query"`
	Conv       string `msgpack:"conv,omitempty"`
	BeforeTime int64  `msgpack:"before_time,omitempty"`
	BeforeConv string `msgpack:"before_conv,omitempty"`
	BeforeSeq  uint64 `msgpack:"before_seq,omitempty"`
	Limit      uint32 `msgpack:"limit,omitempty"`
}

// SearchResult answers Search: the matches, newest first. While HasMore, the
// Next fields are the Before fields of the next page.
type SearchResult struct {
	Messages []Message `msgpack:"messages"`
	HasMore  bool      `msgpack:"has_more"`
	NextTime int64     `msgpack:"next_time,omitempty"`
	NextConv string    `msgpack:"next_conv,omitempty"`
	NextSeq  uint64    `msgpack:"next_seq,omitempty"`
}
