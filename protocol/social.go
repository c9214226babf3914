package protocol

// Frames of users, friends, groups and presence.

// Frame types of users and friends (0x0040-0x005F), groups (0x0060-0x007F)
// and presence (0x0080-0x008F).
const (
	TypeUserSearch     Type = 0x0040 // UserSearch, C→S; answered by UserList
	TypeUserList       Type = 0x0041 // UserList, S→C
	TypeProfileGet     Type = 0x0042 // ProfileGet, C→S; answered by UserInfo
	TypeUserInfo       Type = 0x0043 // UserInfo, S→C
	TypeProfileUpdate  Type = 0x0044 // ProfileUpdate, C→S; answered by UserInfo
	TypeFriendRequest  Type = 0x0045 // FriendRequest, C→S; answered by OK
	TypeFriendRequests Type = 0x0046 // FriendRequests, C→S; answered by FriendRequestList
	TypeFriendReqList  Type = 0x0047 // FriendRequestList, S→C
	TypeFriendAnswer   Type = 0x0048 // FriendAnswer, C→S; answered by OK
	TypeFriendDelete   Type = 0x0049 // FriendDelete, C→S; answered by OK
	TypeFriendEvent    Type = 0x004A // FriendEvent, S→C push
	TypeFriends        Type = 0x004B // Friends, C→S; answered by FriendList
	TypeFriendList     Type = 0x004C // FriendList, S→C

	TypeGroupCreate   Type = 0x0060 // GroupCreate, C→S; answered by GroupInfo
	TypeGroupInfo     Type = 0x0061 // GroupInfo, S→C
	TypeGroupJoin     Type = 0x0062 // GroupJoin, C→S; answered by GroupInfo
	TypeGroupInvite   Type = 0x0063 // GroupInvite, C→S; answered by OK
	TypeGroupLeave    Type = 0x0064 // GroupLeave, C→S; answered by OK
	TypeGroupRename   Type = 0x0065 // GroupRename, C→S; answered by OK
	TypeGroupRemove   Type = 0x0066 // GroupRemove, C→S; answered by OK
	TypeGroupTransfer Type = 0x0067 // GroupTransfer, C→S; answered by OK
	TypeGroupDisband  Type = 0x0068 // GroupDisband, C→S; answered by OK
	TypeGroups        Type = 0x0069 // Groups, C→S; answered by GroupList
	TypeGroupList     Type = 0x006A // GroupList, S→C
	TypeGroupMembers  Type = 0x006B // GroupMembers, C→S; answered by MemberList
	TypeMemberList    Type = 0x006C // MemberList, S→C
	TypeGroupEvent    Type = 0x006D // GroupEvent, S→C push
	TypeGroupSetOpen  Type = 0x006E // GroupSetOpen, C→S; answered by OK
	TypeGroupSearch   Type = 0x006F // GroupSearch, C→S; answered by OpenGroupList
	TypeOpenGroupList Type = 0x0070 // OpenGroupList, S→C

	TypePresence Type = 0x0080 // Presence, S→C push
)

// UserInfo is a user's public profile. Online is filled where the server
// knows it (friend and member lists, search).
type UserInfo struct {
	UserID      int64  `msgpack:"user_id"`
	Username    string `msgpack:"username"`
	DisplayName string `msgpack:"display_name,omitempty"`
	AvatarURL   string `msgpack:"avatar_url,omitempty"`
	Online      bool   `msgpack:"online,omitempty"`
}

// UserSearch finds users whose username starts with Prefix (case-insensitive),
// ordered by username, after the username After (paging), at most Limit.
type UserSearch struct {
	Prefix string `msgpack:"prefix"`
	After  string `msgpack:"after,omitempty"`
	Limit  uint32 `msgpack:"limit,omitempty"`
}

// UserList answers UserSearch; Next is the After of the next page, empty at the end.
type UserList struct {
	Users []UserInfo `msgpack:"users"`
	Next  string     `msgpack:"next,omitempty"`
}

// ProfileGet asks for a user's profile; UserID 0 means oneself.
type ProfileGet struct {
	UserID int64 `msgpack:"user_id,omitempty"`
}

// ProfileUpdate replaces the caller's display name and avatar URL.
type ProfileUpdate struct {
	DisplayName string `msgpack:"display_name"`
	AvatarURL   string `msgpack:"avatar_url"`
}

// FriendRequest asks To to become a friend, with a short note.
type FriendRequest struct {
	To   int64  `msgpack:"to"`
	Note string `msgpack:"note,omitempty"`
}

// FriendRequests asks for the pending requests to and from the caller.
type FriendRequests struct {
	// Offset skips as many requests of each list: the next page starts
	// at the previous page's offset plus its length.
	Offset uint32 `msgpack:"offset,omitempty"`
}

// PendingRequest is one friend request waiting for an answer.
type PendingRequest struct {
	From    UserInfo `msgpack:"from"`
	To      UserInfo `msgpack:"to"`
	Note    string   `msgpack:"note,omitempty"`
	Created int64    `msgpack:"created"` // Unix ms
}

// FriendRequestList answers FriendRequests.
type FriendRequestList struct {
	Incoming []PendingRequest `msgpack:"incoming"`
	Outgoing []PendingRequest `msgpack:"outgoing"`
	HasMore  bool             `msgpack:"has_more,omitempty"` // either list goes on past this page
}

// FriendAnswer accepts or declines the request From sent to the caller.
type FriendAnswer struct {
	From   int64 `msgpack:"from"`
	Accept bool  `msgpack:"accept"`
}

// FriendDelete ends a friendship, for both sides.
type FriendDelete struct {
	UserID int64 `msgpack:"user_id"`
}

// Friend event kinds.
const (
	FriendRequested = "request"  // User sent the receiver a request (Note)
	FriendAccepted  = "accepted" // User accepted the receiver's request
	FriendDeclined  = "declined" // User declined the receiver's request
	FriendRemoved   = "removed"  // User ended the friendship
)

// FriendEvent is pushed to the other party of a friend action.
type FriendEvent struct {
	Kind string   `msgpack:"kind"`
	User UserInfo `msgpack:"user"`
	Note string   `msgpack:"note,omitempty"`
}

// Friends asks for the caller's friends with their online status.
type Friends struct {
	Offset uint32 `msgpack:"offset,omitempty"` // friends to skip: the next page's start
}

// FriendList answers Friends, ordered by username.
type FriendList struct {
	Friends []UserInfo `msgpack:"friends"`
	HasMore bool       `msgpack:"has_more,omitempty"`
}

// GroupCreate makes a group owned by the caller, with the given initial
// members (the caller is added). Open groups can be joined by anyone.
type GroupCreate struct {
	Name    string  `msgpack:"name"`
	Members []int64 `msgpack:"members,omitempty"`
	Open    bool    `msgpack:"open,omitempty"`
}

// GroupInfo describes a group.
type GroupInfo struct {
	GroupID int64  `msgpack:"group_id"`
	Name    string `msgpack:"name"`
	Owner   int64  `msgpack:"owner"`
	Open    bool   `msgpack:"open,omitempty"`
	Members int    `msgpack:"members"`
	Created int64  `msgpack:"created"` // Unix ms
}

// GroupJoin joins an open group.
type GroupJoin struct {
	GroupID int64 `msgpack:"group_id"`
}

// GroupInvite adds users to a group the caller is a member of.
type GroupInvite struct {
	GroupID int64   `msgpack:"group_id"`
	Users   []int64 `msgpack:"users"`
}

// GroupLeave leaves a group. The owner must hand over ownership first, or
// disband.
type GroupLeave struct {
	GroupID int64 `msgpack:"group_id"`
}

// GroupRename renames a group (owner only).
type GroupRename struct {
	GroupID int64  `msgpack:"group_id"`
	Name    string `msgpack:"name"`
}

// GroupRemove removes a member (owner only).
type GroupRemove struct {
	GroupID int64 `msgpack:"group_id"`
	UserID  int64 `msgpack:"user_id"`
}

// GroupTransfer hands ownership to another member (owner only).
type GroupTransfer struct {
	GroupID int64 `msgpack:"group_id"`
	UserID  int64 `msgpack:"user_id"`
}

// GroupDisband deletes a group (owner only). Its messages stay readable by
// nobody.
type GroupDisband struct {
	GroupID int64 `msgpack:"group_id"`
}

// Groups asks for the caller's groups.
type Groups struct{}

// GroupList answers Groups.
type GroupList struct {
	Groups []GroupInfo `msgpack:"groups"`
}

// GroupMembers asks for a group's members with their online status.
type GroupMembers struct {
	GroupID int64  `msgpack:"group_id"`
	Offset  uint32 `msgpack:"offset,omitempty"` // members to skip: the next page's start
}

// Member is one member of a group.
type Member struct {
	UserInfo `msgpack:",inline"`
	Owner    bool  `msgpack:"owner,omitempty"`
	Joined   int64 `msgpack:"joined"` // Unix ms
}

// MemberList answers GroupMembers.
type MemberList struct {
	GroupID int64    `msgpack:"group_id"`
	Members []Member `msgpack:"members"`
	HasMore bool     `msgpack:"has_more,omitempty"`
}

// GroupSetOpen makes a group open (anyone may join it, and GroupSearch
// lists it) or closed: invitation only (owner only).
type GroupSetOpen struct {
	GroupID int64 `msgpack:"group_id"`
	Open    bool  `msgpack:"open"`
}

// GroupSearch asks for the directory of open groups: those whose name
// starts with Prefix, ignoring letter case (empty: all), ordered by
// lower-cased name then id, after the group (AfterName, AfterID) — the
// Next of the page before — at most Limit (default and maximum in
// docs/protocol.md).
type GroupSearch struct {
	Prefix    string `msgpack:"prefix,omitempty"`
	AfterName string `msgpack:"after_name,omitempty"`
	AfterID   int64  `msgpack:"after_id,omitempty"`
	Limit     uint32 `msgpack:"limit,omitempty"`
}

// OpenGroupList answers GroupSearch. When more may follow, NextName and
// NextID are the AfterName and AfterID of the next page; NextID is 0 at
// the end.
type OpenGroupList struct {
	Groups   []GroupInfo `msgpack:"groups"`
	NextName string      `msgpack:"next_name,omitempty"`
	NextID   int64       `msgpack:"next_id,omitempty"`
}

// Group event kinds.
const (
	GroupJoined    = "joined"    // Users joined (by themselves, or invited by Actor)
	GroupLeft      = "left"      // Users left
	GroupRemoved   = "removed"   // Actor removed Users
	GroupRenamed   = "renamed"   // Actor renamed the group to Name
	GroupOwner     = "owner"     // Actor handed ownership to Users[0]
	GroupDisbanded = "disbanded" // Actor disbanded the group
	GroupOpened    = "opened"    // Actor (the owner) opened the group: anyone may join
	GroupClosed    = "closed"    // Actor (the owner) closed the group: invitation only
)

// GroupEvent is pushed to a group's members (and to removed members) when
// membership or the group itself changes.
type GroupEvent struct {
	GroupID int64   `msgpack:"group_id"`
	Kind    string  `msgpack:"kind"`
	Actor   int64   `msgpack:"actor"`
	Users   []int64 `msgpack:"users,omitempty"`
	Name    string  `msgpack:"name,omitempty"`
}

// Presence is pushed to a user's online friends when the user's first
// connection logs in (Online) or last one goes (not Online).
type Presence struct {
	UserID int64 `msgpack:"user_id"`
	Online bool  `msgpack:"online"`
	At     int64 `msgpack:"at"` // Unix ms
}
