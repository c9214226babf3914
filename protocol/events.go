package protocol

// Conversation events (issue 15 part B): recall, edit and reactions are
// messages in the conversation's sequence whose content type is in
// 0x0100-0x01FF and whose Ref names the sequence of the message they act
// on, so a device that was offline syncs them like any message while the
// original keeps its place. Replies and mentions are fields of an ordinary
// message. Reads (Sync, History) return each message with its current state
// folded in: Recalled, Edited, EditedAt, Reactions.

// Content types of events. Others of 0x0100-0x01FF are reserved; a Send
// with one is refused BAD_MESSAGE.
const (
	ContentRecall   uint16 = 0x0101 // recall the message at Ref for everyone; empty body
	ContentEdit     uint16 = 0x0102 // replace the body of the message at Ref with this body
	ContentReact    uint16 = 0x0103 // add the reaction in the body (an emoji) to the message at Ref
	ContentUnreact  uint16 = 0x0104 // remove the user's reaction in the body from the message at Ref
	contentEventLow uint16 = 0x0100
	contentEventTop uint16 = 0x01FF
)

// IsEvent reports whether content type ct is in the range of conversation
// events (0x0100-0x01FF).
func IsEvent(ct uint16) bool { return ct >= contentEventLow && ct <= contentEventTop }

// CountsUnread reports whether a message of content type ct counts in
// Conversation.Unread: messages do, events (a recall, an edit, a reaction)
// do not. The message an event acts on keeps counting as a message. The
// MySQL store says the same in SQL (storage/mysql eventTypes, checked
// against this by a test).
func CountsUnread(ct uint16) bool { return !IsEvent(ct) }

// Frame types of conversation events (0x00B0-0x00BF).
const (
	TypeEditHistory     Type = 0x00B0 // EditHistory, C→S; answered by EditHistoryResult
	TypeEditHistoryList Type = 0x00B1 // EditHistoryResult, S→C
	TypeReactors        Type = 0x00B2 // Reactors, C→S; answered by ReactorList
	TypeReactorList     Type = 0x00B3 // ReactorList, S→C
)

// Reaction is one emoji's reactions on a message: how many users reacted
// with it and (some of) who, in the order they reacted. Users lists at most
// ShownReactors of them in Sync, History and Push; Reactors asks for all.
type Reaction struct {
	Emoji string  `msgpack:"emoji"`
	Count uint32  `msgpack:"count"`
	Users []int64 `msgpack:"users,omitempty"`
}

// ShownReactors is how many users of one emoji a Message lists.
const ShownReactors = 16

// EditHistory asks for every version of the message at Seq of Conv: the
// original first, then each edit.
type EditHistory struct {
	Conv string `msgpack:"conv"`
	Seq  uint64 `msgpack:"seq"`
}

// EditVersion is one version of an edited message: the seq of the message
// that carried it (the original's, then each edit event's), its body and
// when it was stored.
type EditVersion struct {
	Seq        uint64 `msgpack:"seq"`
	Body       []byte `msgpack:"body"`
	ServerTime int64  `msgpack:"server_time"`
}

// EditHistoryResult answers EditHistory, oldest version first.
type EditHistoryResult struct {
	Conv     string        `msgpack:"conv"`
	Seq      uint64        `msgpack:"seq"`
	Versions []EditVersion `msgpack:"versions"`
}

// Reactors asks for every user who reacted with Emoji to the message at
// Seq of Conv.
type Reactors struct {
	Conv  string `msgpack:"conv"`
	Seq   uint64 `msgpack:"seq"`
	Emoji string `msgpack:"emoji"`
}

// ReactorList answers Reactors, in the order the users reacted.
type ReactorList struct {
	Conv  string  `msgpack:"conv"`
	Seq   uint64  `msgpack:"seq"`
	Emoji string  `msgpack:"emoji"`
	Users []int64 `msgpack:"users"`
}
