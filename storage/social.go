package storage

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Errors of the social graph, matched with errors.Is.
var (
	ErrAlreadyFriends = errors.New("storage: already friends")
	ErrRequestExists  = errors.New("storage: friend request already pending")
	ErrNotFriends     = errors.New("storage: not friends")
	ErrGroupFull      = errors.New("storage: group full")
	ErrAlreadyMember  = errors.New("storage: already a member")
	ErrNotMember      = errors.New("storage: not a member")
)

// Profile is the public part of an account.
type Profile struct {
	ID          int64
	Username    string
	DisplayName string
	AvatarURL   string
}

// FriendRequest is a pending friend request.
type FriendRequest struct {
	From, To Profile
	Note     string
	Created  time.Time
}

// Group is a group chat. Its conversation is protocol.GroupConv(ID).
type Group struct {
	ID      int64
	Name    string
	Owner   int64
	Open    bool // anyone may join
	Members int
	Created time.Time
}

// Member is one member of a group.
type Member struct {
	Profile
	Joined time.Time
}

// Ban is an account ban.
type Ban struct {
	UserID   int64
	Username string
	Until    time.Time
	Reason   string
	Created  time.Time
}

// Profiles stores what users show of themselves.
type Profiles interface {
	// Profile returns a user's profile (ErrNotFound).
	Profile(ctx context.Context, user int64) (Profile, error)
	// SetProfile replaces a user's display name and avatar URL and returns
	// the new profile (ErrNotFound).
	SetProfile(ctx context.Context, user int64, displayName, avatarURL string) (Profile, error)
	// SearchUsers lists users whose username starts with prefix, ignoring
	// letter case, ordered by lower-cased username, after the lower-cased
	// username after (paging; "" from the start), at most limit.
	SearchUsers(ctx context.Context, prefix, after string, limit int) ([]Profile, error)
}

// Friends stores friendships and pending requests. A friendship is
// symmetric: one call makes or ends it for both users.
type Friends interface {
	// RequestFriend records a request from one user to another. If the
	// other user already asked from, the two become friends at once and
	// mutual is true. Errors: ErrAlreadyFriends, ErrRequestExists (from
	// asked to before), ErrNotFound (to does not exist).
	RequestFriend(ctx context.Context, from, to int64, note string, now time.Time) (mutual bool, err error)
	// FriendRequests lists user's pending requests, newest first.
	FriendRequests(ctx context.Context, user int64) (incoming, outgoing []FriendRequest, err error)
	// AnswerFriend accepts (the two become friends) or declines the request
	// from sent to user, and removes it. ErrNotFound if there is none.
	AnswerFriend(ctx context.Context, from, user int64, accept bool, now time.Time) error
	// Unfriend ends a friendship for both users (ErrNotFriends).
	Unfriend(ctx context.Context, a, b int64) error
	// FriendsOf lists user's friends ordered by lower-cased username.
	FriendsOf(ctx context.Context, user int64) ([]Profile, error)
	// AreFriends reports whether a and b are friends.
	AreFriends(ctx context.Context, a, b int64) (bool, error)
}

// Groups stores groups and their members. Being a member of a group is
// being a member of its conversation: a member's read cursor starts at the
// conversation's last sequence when it joins, so it sees neither older
// messages nor unread counts for them; leaving removes the cursor, and the
// conversation no longer appears in Conversations.
type Groups interface {
	// CreateGroup makes a group owned by owner with owner and members in
	// it (duplicates ignored). ErrGroupFull if they number more than max;
	// ErrNotFound if a member does not exist.
	CreateGroup(ctx context.Context, owner int64, name string, open bool, members []int64, max int, now time.Time) (Group, error)
	// Group returns a group (ErrNotFound, also once disbanded).
	Group(ctx context.Context, id int64) (Group, error)
	// AddMembers adds users to a group, all or none, and returns those that
	// were not members already. ErrGroupFull if the group would pass max;
	// ErrNotFound if the group or a user does not exist.
	AddMembers(ctx context.Context, group int64, users []int64, max int, now time.Time) (added []int64, err error)
	// RemoveMember takes user out of a group (ErrNotMember).
	RemoveMember(ctx context.Context, group, user int64) error
	// RenameGroup and SetGroupOwner change a group (ErrNotFound); the new
	// owner must be a member (ErrNotMember).
	RenameGroup(ctx context.Context, group int64, name string) error
	SetGroupOwner(ctx context.Context, group, owner int64) error
	// DeleteGroup removes a group and every membership (ErrNotFound). Its
	// messages stay stored but no one can read them.
	DeleteGroup(ctx context.Context, group int64) error
	// GroupsOf lists the groups user is a member of, by id.
	GroupsOf(ctx context.Context, user int64) ([]Group, error)
	// Members lists a group's members in the order they joined (ErrNotFound).
	Members(ctx context.Context, group int64) ([]Member, error)
	// MemberIDs lists the user ids of a group's members, ascending
	// (ErrNotFound); the cheap form of Members, for fan-out.
	MemberIDs(ctx context.Context, group int64) ([]int64, error)
	// IsMember reports whether user is a member of group.
	IsMember(ctx context.Context, group, user int64) (bool, error)

	// SetGroupOpen makes a group open (anyone may join it, and it is
	// listed by OpenGroups) or closed (ErrNotFound).
	SetGroupOpen(ctx context.Context, group int64, open bool) error
	// OpenGroups is the directory of open groups: those whose
	// DirectoryName starts with DirectoryName(prefix), ordered by
	// DirectoryName then id, strictly after the group (afterName, afterID)
	// of that order ("" and 0: from the start), at most limit. A group
	// closed, renamed or disbanded leaves its old place at once.
	OpenGroups(ctx context.Context, prefix, afterName string, afterID int64, limit int) ([]Group, error)
}

// DirectoryName is the form of a group name that the directory of open
// groups matches and orders by: lower-cased.
func DirectoryName(name string) string { return strings.ToLower(name) }

// Bans stores account bans.
type Bans interface {
	// BanUser bans a user until a time, replacing an earlier ban (ErrNotFound).
	BanUser(ctx context.Context, user int64, until time.Time, reason string, now time.Time) error
	// UnbanUser lifts a ban; lifting none is not an error.
	UnbanUser(ctx context.Context, user int64) error
	// BannedUntil returns the end of user's ban in force at now, or the zero
	// time when there is none.
	BannedUntil(ctx context.Context, user int64, now time.Time) (time.Time, error)
	// ActiveBans lists bans in force at now, by user id.
	ActiveBans(ctx context.Context, now time.Time) ([]Ban, error)
}
