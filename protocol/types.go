package protocol

import "fmt"

// Type is the frame type in the header. Ranges leave room for later frames:
//
//	0x0001-0x000F  connection: errors, heartbeat, generic results, kicks, redirects
//	0x0010-0x001F  accounts and sessions
//	0x0020-0x003F  messages: send, push, ack, sync, history, conversations
//	0x0040-0x005F  users and friends
//	0x0060-0x007F  groups
//	0x0080-0x008F  presence
//	0x0090-0x00AF  receipts, typing and per-user conversation state
//	0x00B0-0x00BF  conversation events: edit history, reactors
//	0x00C0-0x00CF  search and expiring messages
//	0x0100-0x01FF  cluster (node to node and redirects)
type Type uint16

// Frame types. The comment names the body type and the direction:
// C→S from the client, S→C from the server.
const (
	TypeError    Type = 0x0001 // Error, S→C: the request failed
	TypePing     Type = 0x0002 // Ping, C→S (or S→C): heartbeat
	TypePong     Type = 0x0003 // Pong, S→C: heartbeat answer
	TypeOK       Type = 0x0004 // OK, S→C: the request succeeded and has no other result
	TypeKick     Type = 0x0005 // Kick, S→C: the server closes the connection
	TypeRedirect Type = 0x0006 // Redirect, S→C: connect to another node (cluster)

	// Encryption (docs/protocol.md, "Encryption"): the handshake frames are
	// the only plaintext frames of an encrypted connection; Rekey travels
	// encrypted.
	TypeNoiseHello  Type = 0x0007 // NoiseHello, C→S: the first frame; the first Noise message
	TypeNoiseReply  Type = 0x0008 // NoiseReply, S→C: the server's Noise message
	TypeNoiseFinish Type = 0x0009 // NoiseFinish, C→S: the third Noise message of XX
	TypeRekey       Type = 0x000A // Rekey, either way: the sender's next frames use the next key

	TypeRegister Type = 0x0010 // Register, C→S; answered by LoginOK
	TypeLogin    Type = 0x0011 // Login, C→S; answered by LoginOK
	TypeLoginOK  Type = 0x0012 // LoginOK, S→C
	TypeLogout   Type = 0x0013 // Logout, C→S; answered by OK, then the server closes

	TypeSend             Type = 0x0020 // Send, C→S; answered by SendAck
	TypeSendAck          Type = 0x0021 // SendAck, S→C
	TypePush             Type = 0x0022 // Push (a Message), S→C
	TypeAck              Type = 0x0023 // Ack, C→S; answered by OK
	TypeSync             Type = 0x0024 // Sync, C→S; answered by SyncResult
	TypeSyncResult       Type = 0x0025 // SyncResult, S→C
	TypeHistory          Type = 0x0026 // History, C→S; answered by HistoryResult
	TypeHistoryResult    Type = 0x0027 // HistoryResult, S→C
	TypeDeleteHistory    Type = 0x0028 // DeleteHistory, C→S; answered by OK
	TypeConversations    Type = 0x0029 // Conversations, C→S; answered by ConversationList
	TypeConversationList Type = 0x002A // ConversationList, S→C
)

// typeInfo describes a frame type: its name, a constructor of its body, and
// whether clients may send it.
type typeInfo struct {
	name       string
	newBody    func() any
	fromClient bool
}

var frameTypes = map[Type]typeInfo{
	TypeError:            {"Error", func() any { return new(Error) }, false},
	TypePing:             {"Ping", func() any { return new(Ping) }, true},
	TypePong:             {"Pong", func() any { return new(Pong) }, false},
	TypeOK:               {"OK", func() any { return new(OK) }, false},
	TypeKick:             {"Kick", func() any { return new(Kick) }, false},
	TypeRedirect:         {"Redirect", func() any { return new(Redirect) }, false},
	TypeNoiseHello:       {"NoiseHello", func() any { return new(NoiseHello) }, true},
	TypeNoiseReply:       {"NoiseReply", func() any { return new(NoiseReply) }, false},
	TypeNoiseFinish:      {"NoiseFinish", func() any { return new(NoiseFinish) }, true},
	TypeRekey:            {"Rekey", func() any { return new(Rekey) }, true},
	TypeRegister:         {"Register", func() any { return new(Register) }, true},
	TypeLogin:            {"Login", func() any { return new(Login) }, true},
	TypeLoginOK:          {"LoginOK", func() any { return new(LoginOK) }, false},
	TypeLogout:           {"Logout", func() any { return new(Logout) }, true},
	TypeSend:             {"Send", func() any { return new(Send) }, true},
	TypeSendAck:          {"SendAck", func() any { return new(SendAck) }, false},
	TypePush:             {"Push", func() any { return new(Message) }, false},
	TypeAck:              {"Ack", func() any { return new(Ack) }, true},
	TypeSync:             {"Sync", func() any { return new(Sync) }, true},
	TypeSyncResult:       {"SyncResult", func() any { return new(SyncResult) }, false},
	TypeHistory:          {"History", func() any { return new(History) }, true},
	TypeHistoryResult:    {"HistoryResult", func() any { return new(HistoryResult) }, false},
	TypeDeleteHistory:    {"DeleteHistory", func() any { return new(DeleteHistory) }, true},
	TypeConversations:    {"Conversations", func() any { return new(Conversations) }, true},
	TypeConversationList: {"ConversationList", func() any { return new(ConversationList) }, false},
	TypeUserSearch:       {"UserSearch", func() any { return new(UserSearch) }, true},
	TypeUserList:         {"UserList", func() any { return new(UserList) }, false},
	TypeProfileGet:       {"ProfileGet", func() any { return new(ProfileGet) }, true},
	TypeUserInfo:         {"UserInfo", func() any { return new(UserInfo) }, false},
	TypeProfileUpdate:    {"ProfileUpdate", func() any { return new(ProfileUpdate) }, true},
	TypeFriendRequest:    {"FriendRequest", func() any { return new(FriendRequest) }, true},
	TypeFriendRequests:   {"FriendRequests", func() any { return new(FriendRequests) }, true},
	TypeFriendReqList:    {"FriendRequestList", func() any { return new(FriendRequestList) }, false},
	TypeFriendAnswer:     {"FriendAnswer", func() any { return new(FriendAnswer) }, true},
	TypeFriendDelete:     {"FriendDelete", func() any { return new(FriendDelete) }, true},
	TypeFriendEvent:      {"FriendEvent", func() any { return new(FriendEvent) }, false},
	TypeFriends:          {"Friends", func() any { return new(Friends) }, true},
	TypeFriendList:       {"FriendList", func() any { return new(FriendList) }, false},
	TypeGroupCreate:      {"GroupCreate", func() any { return new(GroupCreate) }, true},
	TypeGroupInfo:        {"GroupInfo", func() any { return new(GroupInfo) }, false},
	TypeGroupJoin:        {"GroupJoin", func() any { return new(GroupJoin) }, true},
	TypeGroupInvite:      {"GroupInvite", func() any { return new(GroupInvite) }, true},
	TypeGroupLeave:       {"GroupLeave", func() any { return new(GroupLeave) }, true},
	TypeGroupRename:      {"GroupRename", func() any { return new(GroupRename) }, true},
	TypeGroupRemove:      {"GroupRemove", func() any { return new(GroupRemove) }, true},
	TypeGroupTransfer:    {"GroupTransfer", func() any { return new(GroupTransfer) }, true},
	TypeGroupDisband:     {"GroupDisband", func() any { return new(GroupDisband) }, true},
	TypeGroups:           {"Groups", func() any { return new(Groups) }, true},
	TypeGroupList:        {"GroupList", func() any { return new(GroupList) }, false},
	TypeGroupMembers:     {"GroupMembers", func() any { return new(GroupMembers) }, true},
	TypeMemberList:       {"MemberList", func() any { return new(MemberList) }, false},
	TypeGroupEvent:       {"GroupEvent", func() any { return new(GroupEvent) }, false},
	TypeGroupSetOpen:     {"GroupSetOpen", func() any { return new(GroupSetOpen) }, true},
	TypeGroupSearch:      {"GroupSearch", func() any { return new(GroupSearch) }, true},
	TypeOpenGroupList:    {"OpenGroupList", func() any { return new(OpenGroupList) }, false},
	TypePresence:         {"Presence", func() any { return new(Presence) }, false},
	TypeSearch:           {"Search", func() any { return new(Search) }, true},
	TypeSearchResult:     {"SearchResult", func() any { return new(SearchResult) }, false},
	TypeExpired:          {"Expired", func() any { return new(Expired) }, false},
	TypeEditHistory:      {"EditHistory", func() any { return new(EditHistory) }, true},
	TypeEditHistoryList:  {"EditHistoryResult", func() any { return new(EditHistoryResult) }, false},
	TypeReactors:         {"Reactors", func() any { return new(Reactors) }, true},
	TypeReactorList:      {"ReactorList", func() any { return new(ReactorList) }, false},
}

func (t Type) String() string {
	if info, ok := frameTypes[t]; ok {
		return info.name
	}
	return fmt.Sprintf("Type(0x%04X)", uint16(t))
}

// Known reports whether t is a frame type of this protocol version.
func (t Type) Known() bool {
	_, ok := frameTypes[t]
	return ok
}

// FromClient reports whether clients may send frames of type t; the server
// answers other types with UNKNOWN_TYPE.
func (t Type) FromClient() bool {
	return frameTypes[t].fromClient
}

// NewBody returns a pointer to a new, zero body of frame type t (Push takes a
// *Message), or nil for a type this package does not know.
func NewBody(t Type) any {
	if info, ok := frameTypes[t]; ok {
		return info.newBody()
	}
	return nil
}
