package protocol

// Frame bodies. Each is a msgpack map keyed by the field names in the tags;
// fields marked omitempty are left out when zero, and a receiver treats a
// missing field as zero. Receivers ignore keys they do not know, so later
// versions can add fields. Integers may arrive in any msgpack integer width.

// Error answers a request that failed. RequestID in the header is the
// request's.
type Error struct {
	Code    Code   `msgpack:"code"`
	Message string `msgpack:"message"`
	// Until is a time in Unix milliseconds the error refers to: the end of a
	// ban (BANNED), or when to retry (RATE_LIMITED, TOO_MANY_ATTEMPTS).
	Until int64 `msgpack:"until,omitempty"`
}

// Ping is a heartbeat. Either side may send it; the other answers Pong.
type Ping struct{}

// Pong answers Ping with the server clock in Unix milliseconds.
type Pong struct {
	ServerTime int64 `msgpack:"server_time,omitempty"`
}

// OK answers a request that succeeded and has nothing else to say.
type OK struct{}

// Kick is the last frame the server sends before it closes the connection.
type Kick struct {
	Reason  KickReason `msgpack:"reason"`
	Message string     `msgpack:"message,omitempty"`
	// Until is the end of a ban in Unix milliseconds, with KickBanned.
	Until int64 `msgpack:"until,omitempty"`
}

// Redirect tells the client to connect to Addr and log in there.
type Redirect struct {
	Addr   string `msgpack:"addr"`
	NodeID int64  `msgpack:"node_id,omitempty"`
}

// Register creates an account and logs the connection in. It is answered by
// LoginOK or Error.
type Register struct {
	Username string `msgpack:"username"`
	Password string `msgpack:"password"`
	Device   string `msgpack:"device,omitempty"`
}

// Login authenticates the connection by password or by a resume token from
// an earlier LoginOK (then Username and Password are empty).
type Login struct {
	Username string `msgpack:"username,omitempty"`
	Password string `msgpack:"password,omitempty"`
	Token    string `msgpack:"token,omitempty"`
	Device   string `msgpack:"device,omitempty"`
}

// LoginOK answers Register and Login.
type LoginOK struct {
	UserID       int64  `msgpack:"user_id"`
	Username     string `msgpack:"username"`
	Token        string `msgpack:"token"`
	TokenExpires int64  `msgpack:"token_expires"` // Unix ms
	ServerTime   int64  `msgpack:"server_time"`   // Unix ms
	Heartbeat    int64  `msgpack:"heartbeat"`     // interval in ms
	NodeID       int64  `msgpack:"node_id,omitempty"`
	SendWindow   int64  `msgpack:"send_window,omitempty"` // Sends the connection may have unanswered; more get BUSY
	MaxMessage   int64  `msgpack:"max_message,omitempty"` // the largest message body in bytes; more get MESSAGE_TOO_LONG
	// FilesURL is the base URL of the server's HTTP file endpoint
	// (attachments), omitted when the server has none.
	FilesURL string `msgpack:"files_url,omitempty"`
}

// Logout revokes the session's token; the server answers OK and closes.
type Logout struct{}

// Send posts a message to a user (To) or a group (GroupID): exactly one of
// them is set. ClientMsgID makes the send idempotent: a repeated Send with
// the same ClientMsgID from the same user is stored once and acked with the
// same ids.
type Send struct {
	ClientMsgID string `msgpack:"client_msg_id"`
	To          int64  `msgpack:"to,omitempty"`
	GroupID     int64  `msgpack:"group_id,omitempty"`
	ContentType uint16 `msgpack:"content_type,omitempty"`
	Body        []byte `msgpack:"body"`
	// Ref is the seq of the message an event (ContentType 0x0100-0x01FF)
	// acts on, in the same conversation; zero otherwise.
	Ref uint64 `msgpack:"ref,omitempty"`
	// ReplyTo is the seq of the message this one replies to (quotes), in
	// the same conversation.
	ReplyTo uint64 `msgpack:"reply_to,omitempty"`
	// Mentions are the users this message mentions (@user); MentionAll
	// mentions every member of the group (its owner only).
	Mentions   []int64 `msgpack:"mentions,omitempty"`
	MentionAll bool    `msgpack:"mention_all,omitempty"`
}

// SendAck answers Send once the message is durably stored.
type SendAck struct {
	MsgID      int64  `msgpack:"msg_id"`
	Conv       string `msgpack:"conv"`
	Seq        uint64 `msgpack:"seq"`
	ServerTime int64  `msgpack:"server_time"`
	// Duplicate is true when the ClientMsgID was seen before; the ids are
	// those of the first store.
	Duplicate bool `msgpack:"duplicate,omitempty"`
}

// Message is a stored message, the body of Push and the element of
// SyncResult and HistoryResult.
type Message struct {
	MsgID       int64  `msgpack:"msg_id"`
	Conv        string `msgpack:"conv"`
	Seq         uint64 `msgpack:"seq"`
	From        int64  `msgpack:"from"`
	To          int64  `msgpack:"to,omitempty"`
	GroupID     int64  `msgpack:"group_id,omitempty"`
	ClientMsgID string `msgpack:"client_msg_id,omitempty"`
	ContentType uint16 `msgpack:"content_type,omitempty"`
	Body        []byte `msgpack:"body"`
	ServerTime  int64  `msgpack:"server_time"`

	// Fields of conversation events (events.go), left out when zero, so a
	// client that does not know them sees the message as before.
	Ref        uint64  `msgpack:"ref,omitempty"`
	ReplyTo    uint64  `msgpack:"reply_to,omitempty"`
	Mentions   []int64 `msgpack:"mentions,omitempty"`
	MentionAll bool    `msgpack:"mention_all,omitempty"`
	// State folded in by the server when it reads the message: Recalled
	// (Body is then empty), Edited (how many times; on an edit event, which
	// edit it is), EditedAt (Unix ms of the last edit) and Reactions.
	Recalled  bool       `msgpack:"recalled,omitempty"`
	Edited    uint32     `msgpack:"edited,omitempty"`
	EditedAt  int64      `msgpack:"edited_at,omitempty"`
	Reactions []Reaction `msgpack:"reactions,omitempty"`
	// ExpiresAt (Unix ms) is when the message expires (expiry.go): set by
	// the store from the conversation's timer; zero: never.
	ExpiresAt int64 `msgpack:"expires_at,omitempty"`
}

// Ack tells the server the user has every message of Conv up to Seq. The
// server's read cursor only moves forward.
type Ack struct {
	Conv string `msgpack:"conv"`
	Seq  uint64 `msgpack:"seq"`
}

// Sync asks for the messages of Conv after LastAckID (a sequence number),
// oldest first, at most Limit (server default 100, maximum 500).
type Sync struct {
	Conv      string `msgpack:"conv"`
	LastAckID uint64 `msgpack:"last_ack_id"`
	Limit     uint32 `msgpack:"limit,omitempty"`
}

// SyncResult answers Sync. Next is the LastAckID for the next page; HasMore
// says whether there is one. LastSeq is the conversation's newest sequence.
type SyncResult struct {
	Conv     string    `msgpack:"conv"`
	Messages []Message `msgpack:"messages"`
	Next     uint64    `msgpack:"next"`
	LastSeq  uint64    `msgpack:"last_seq"`
	HasMore  bool      `msgpack:"has_more"`
}

// History pages backwards: messages of Conv with a sequence below BeforeSeq
// (0: from the newest), newest first, at most Limit.
type History struct {
	Conv      string `msgpack:"conv"`
	BeforeSeq uint64 `msgpack:"before_seq,omitempty"`
	Limit     uint32 `msgpack:"limit,omitempty"`
}

// HistoryResult answers History, newest first. Next is the BeforeSeq of the
// next (older) page.
type HistoryResult struct {
	Conv     string    `msgpack:"conv"`
	Messages []Message `msgpack:"messages"`
	Next     uint64    `msgpack:"next"`
	HasMore  bool      `msgpack:"has_more"`
}

// DeleteHistory hides messages of Conv from this user only: those listed in
// Seqs, and every one up to and including UpTo when it is not zero.
type DeleteHistory struct {
	Conv string   `msgpack:"conv"`
	Seqs []uint64 `msgpack:"seqs,omitempty"`
	UpTo uint64   `msgpack:"up_to,omitempty"`
}

// Conversations asks for the user's conversations, most recent first. The
// next page starts after the entry AfterTime, AfterConv (the last_time and
// conv of the previous page's last entry); AfterConv empty: the first page.
type Conversations struct {
	Limit     uint32 `msgpack:"limit,omitempty"`
	AfterTime int64  `msgpack:"after_time,omitempty"`
	AfterConv string `msgpack:"after_conv,omitempty"`
}

// ConversationList answers Conversations. HasMore says whether a next page
// exists.
type ConversationList struct {
	Conversations []Conversation `msgpack:"conversations"`
	HasMore       bool           `msgpack:"has_more,omitempty"`
}

// Conversation is one entry of ConversationList.
type Conversation struct {
	Conv    string   `msgpack:"conv"`
	LastSeq uint64   `msgpack:"last_seq"`
	AckSeq  uint64   `msgpack:"ack_seq"`
	Unread  uint64   `msgpack:"unread"`
	Last    *Message `msgpack:"last,omitempty"`
	// LastTime is the server time of the conversation's newest message
	// (hidden or not): the order of the list and the key of its pages.
	LastTime int64 `msgpack:"last_time,omitempty"`
	Muted    bool  `msgpack:"muted,omitempty"`
	Pinned   bool  `msgpack:"pinned,omitempty"`
	// Timer is the conversation's disappearing-messages timer in seconds
	// (expiry.go); zero: off.
	Timer uint32 `msgpack:"timer,omitempty"`
}

// NoiseHello opens an encrypted connection: it must be the connection's
// first frame. Pattern is "XX" (first contact) or "IK" (the client knows
// the server's static key); Msg is the first Noise handshake message.
type NoiseHello struct {
	Pattern string `msgpack:"pattern"`
	Msg     []byte `msgpack:"msg"`
}

// NoiseReply carries the server's Noise handshake message.
type NoiseReply struct {
	Msg []byte `msgpack:"msg"`
}

// NoiseFinish carries the client's last Noise message of XX.
type NoiseFinish struct {
	Msg []byte `msgpack:"msg"`
}

// Rekey tells the receiver that the sender's frames after it are encrypted
// with the next key of the sender's direction (Noise's Rekey()).
type Rekey struct{}
