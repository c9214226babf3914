package protocol

// Frames of receipts, typing and per-user conversation state (0x0090-0x00AF).

// Frame types of receipts and conversation state.
const (
	TypeTyping         Type = 0x0090 // Typing, C→S; answered by OK
	TypeTypingEvent    Type = 0x0091 // TypingEvent, S→C push
	TypeReadEvent      Type = 0x0092 // ReadEvent, S→C push
	TypeReceived       Type = 0x0093 // Received, C→S; answered by OK
	TypeDeliveredEvent Type = 0x0094 // DeliveredEvent, S→C push
	TypeGroupReadEvent Type = 0x0095 // GroupReadEvent, S→C push
	TypeReceipts       Type = 0x0096 // Receipts, C→S; answered by ReceiptList
	TypeReceiptList    Type = 0x0097 // ReceiptList, S→C
	TypeReaders        Type = 0x0098 // Readers, C→S; answered by ReaderList
	TypeReaderList     Type = 0x0099 // ReaderList, S→C
	TypeConvPrefs      Type = 0x009A // ConvPrefs, C→S; answered by OK
	TypeConvState      Type = 0x009B // ConvState, S→C push
	TypeSettings       Type = 0x009C // Settings, C→S; answered by SettingsInfo
	TypeSettingsInfo   Type = 0x009D // SettingsInfo, S→C
)

func init() {
	for t, info := range map[Type]typeInfo{
		TypeTyping:         {"Typing", func() any { return new(Typing) }, true},
		TypeTypingEvent:    {"TypingEvent", func() any { return new(TypingEvent) }, false},
		TypeReadEvent:      {"ReadEvent", func() any { return new(ReadEvent) }, false},
		TypeReceived:       {"Received", func() any { return new(Received) }, true},
		TypeDeliveredEvent: {"DeliveredEvent", func() any { return new(DeliveredEvent) }, false},
		TypeGroupReadEvent: {"GroupReadEvent", func() any { return new(GroupReadEvent) }, false},
		TypeReceipts:       {"Receipts", func() any { return new(Receipts) }, true},
		TypeReceiptList:    {"ReceiptList", func() any { return new(ReceiptList) }, false},
		TypeReaders:        {"Readers", func() any { return new(Readers) }, true},
		TypeReaderList:     {"ReaderList", func() any { return new(ReaderList) }, false},
		TypeConvPrefs:      {"ConvPrefs", func() any { return new(ConvPrefs) }, true},
		TypeConvState:      {"ConvState", func() any { return new(ConvState) }, false},
		TypeSettings:       {"Settings", func() any { return new(Settings) }, true},
		TypeSettingsInfo:   {"SettingsInfo", func() any { return new(SettingsInfo) }, false},
	} {
		frameTypes[t] = info
	}
}

// Typing says the user is typing in Conv (or, with Stop, no longer is).
// The server stores nothing and fans it out to the other members.
type Typing struct {
	Conv string `msgpack:"conv"`
	Stop bool   `msgpack:"stop,omitempty"`
}

// TypingEvent tells that User is typing in Conv until Until (Unix ms, server
// clock); Until 0 means the user stopped. A receiver forgets it at Until.
type TypingEvent struct {
	Conv  string `msgpack:"conv"`
	User  int64  `msgpack:"user"`
	Until int64  `msgpack:"until,omitempty"`
}

// ReadEvent tells that User's read cursor in Conv moved to Seq: pushed to
// the other user of a direct conversation (unless User turned receipts off)
// and to User's other connections.
type ReadEvent struct {
	Conv string `msgpack:"conv"`
	User int64  `msgpack:"user"`
	Seq  uint64 `msgpack:"seq"`
}

// Received tells the server that a device of the user holds every message
// of a direct conversation Conv up to Seq; the other user learns it as a
// DeliveredEvent, or later from ReceiptList.PeerDelivered.
type Received struct {
	Conv string `msgpack:"conv"`
	Seq  uint64 `msgpack:"seq"`
}

// DeliveredEvent tells the sender that a device of User holds the messages
// of Conv up to Seq.
type DeliveredEvent struct {
	Conv string `msgpack:"conv"`
	User int64  `msgpack:"user"`
	Seq  uint64 `msgpack:"seq"`
}

// ReadCount is how many members (the sender aside) have read message Seq.
type ReadCount struct {
	Seq   uint64 `msgpack:"seq"`
	Count uint32 `msgpack:"count"`
}

// GroupReadEvent gives the sender of group messages their new read counts:
// reads are collected for a while and sent at most once per interval per
// sender and group, whatever the number of readers.
type GroupReadEvent struct {
	Conv  string      `msgpack:"conv"`
	Reads []ReadCount `msgpack:"reads"`
}

// Receipts asks for the read state of Conv: in a direct conversation the
// other user's read cursor; in a group the read counts of Seqs (at most 100).
type Receipts struct {
	Conv string   `msgpack:"conv"`
	Seqs []uint64 `msgpack:"seqs,omitempty"`
}

// ReceiptList answers Receipts. PeerDelivered (direct conversations) is
// the other user's delivery cursor: a device of it holds the messages up
// to there.
type ReceiptList struct {
	Conv          string      `msgpack:"conv"`
	PeerRead      uint64      `msgpack:"peer_read,omitempty"`
	Reads         []ReadCount `msgpack:"reads,omitempty"`
	PeerDelivered uint64      `msgpack:"peer_delivered,omitempty"`
}

// Readers asks which members of a group have read message Seq of Conv.
type Readers struct {
	Conv string `msgpack:"conv"`
	Seq  uint64 `msgpack:"seq"`
}

// ReaderList answers Readers: the members (the sender aside, and those who
// turned receipts off) whose read cursor is at or past Seq, ascending.
type ReaderList struct {
	Conv  string  `msgpack:"conv"`
	Seq   uint64  `msgpack:"seq"`
	Users []int64 `msgpack:"users"`
}

// ConvPrefs sets the user's own flags of Conv; both are replaced.
type ConvPrefs struct {
	Conv   string `msgpack:"conv"`
	Muted  bool   `msgpack:"muted,omitempty"`
	Pinned bool   `msgpack:"pinned,omitempty"`
}

// Conversation state kinds.
const (
	StatePrefs  = "prefs"  // Muted and Pinned changed
	StateHidden = "hidden" // the user deleted Seqs and every message up to UpTo
)

// ConvState is pushed to the user's other connections when the user changes
// its own state of Conv on one of them.
type ConvState struct {
	Conv   string   `msgpack:"conv"`
	Kind   string   `msgpack:"kind"`
	Muted  bool     `msgpack:"muted,omitempty"`
	Pinned bool     `msgpack:"pinned,omitempty"`
	Seqs   []uint64 `msgpack:"seqs,omitempty"`
	UpTo   uint64   `msgpack:"up_to,omitempty"`
}

// Settings reads the user's settings or, with Set, replaces them.
type Settings struct {
	Set         bool `msgpack:"set,omitempty"`
	ReceiptsOff bool `msgpack:"receipts_off,omitempty"`
}

// SettingsInfo answers Settings with the settings in force.
type SettingsInfo struct {
	ReceiptsOff bool `msgpack:"receipts_off,omitempty"`
}
