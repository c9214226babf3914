package client

import (
	"context"
	"strings"

	"github.com/parleyim/parley/protocol"
)

// Notice is a push that is not a message: exactly one of its fields is
// set. Notices are not stored by the server: after each login an
// application refreshes Friends, FriendRequests and Groups, and reads
// conversation state from Conversations and Receipts.
type Notice struct {
	Friend    *protocol.FriendEvent    // a friend request, its answer, or an unfriending
	Group     *protocol.GroupEvent     // a change of a group or of its members
	Presence  *protocol.Presence       // a friend came online or went offline
	Typing    *protocol.TypingEvent    // someone types in a conversation (or stopped)
	Read      *protocol.ReadEvent      // a read cursor moved: the other user's, or this user's on another device
	Delivered *protocol.DeliveredEvent // direct messages reached a device of the other user
	GroupRead *protocol.GroupReadEvent // new read counts of this user's group messages
	State     *protocol.ConvState      // this user changed a conversation's state on another device
	Expired   *protocol.Expired        // messages of a conversation expired: drop them (expiry.go)
}

// noticeBuffer is the capacity of the Notices channel.
const noticeBuffer = 256

func decodeNotice(t protocol.Type, body []byte) (Notice, error) {
	var n Notice
	var v any
	switch t {
	case protocol.TypeFriendEvent:
		n.Friend = &protocol.FriendEvent{}
		v = n.Friend
	case protocol.TypeGroupEvent:
		n.Group = &protocol.GroupEvent{}
		v = n.Group
	case protocol.TypeTypingEvent:
		n.Typing = &protocol.TypingEvent{}
		v = n.Typing
	case protocol.TypeReadEvent:
		n.Read = &protocol.ReadEvent{}
		v = n.Read
	case protocol.TypeDeliveredEvent:
		n.Delivered = &protocol.DeliveredEvent{}
		v = n.Delivered
	case protocol.TypeGroupReadEvent:
		n.GroupRead = &protocol.GroupReadEvent{}
		v = n.GroupRead
	case protocol.TypeConvState:
		n.State = &protocol.ConvState{}
		v = n.State
	case protocol.TypeExpired:
		n.Expired = &protocol.Expired{}
		v = n.Expired
	default:
		n.Presence = &protocol.Presence{}
		v = n.Presence
	}
	return n, protocol.DecodeBody(body, v)
}

// Notices delivers friend, group and presence pushes. Like Events it never
// blocks the client: when the application lags, the oldest are dropped. It
// is closed by Close.
func (c *Client) Notices() <-chan Notice { return c.notices }

func (c *Client) notify(n Notice) {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if !c.evClosed && offer(c.notices, n) {
		c.log.Warn("notice dropped: Notices is not read")
	}
}

// ok sends a request whose answer is OK.
func (c *Client) ok(ctx context.Context, t protocol.Type, body any) error {
	_, err := c.Do(ctx, t, body, &protocol.OK{})
	return err
}

// SearchUsers lists users whose username starts with prefix, ignoring
// case; pass the previous page's Next as after for the next page.
func (c *Client) SearchUsers(ctx context.Context, prefix, after string, limit uint32) (protocol.UserList, error) {
	var res protocol.UserList
	_, err := c.Do(ctx, protocol.TypeUserSearch, &protocol.UserSearch{Prefix: prefix, After: after, Limit: limit}, &res)
	return res, err
}

// Profile returns a user's profile; user 0 is oneself.
func (c *Client) Profile(ctx context.Context, user int64) (protocol.UserInfo, error) {
	var res protocol.UserInfo
	_, err := c.Do(ctx, protocol.TypeProfileGet, &protocol.ProfileGet{UserID: user}, &res)
	return res, err
}

// UpdateProfile replaces one's display name and avatar URL.
func (c *Client) UpdateProfile(ctx context.Context, displayName, avatarURL string) (protocol.UserInfo, error) {
	var res protocol.UserInfo
	_, err := c.Do(ctx, protocol.TypeProfileUpdate, &protocol.ProfileUpdate{DisplayName: displayName, AvatarURL: avatarURL}, &res)
	return res, err
}

// RequestFriend asks user to become a friend. If user had asked first, the
// two are friends at once.
func (c *Client) RequestFriend(ctx context.Context, user int64, note string) error {
	return c.ok(ctx, protocol.TypeFriendRequest, &protocol.FriendRequest{To: user, Note: note})
}

// FriendRequests lists the pending requests to and from oneself, asking
// for every page.
func (c *Client) FriendRequests(ctx context.Context) (protocol.FriendRequestList, error) {
	var all protocol.FriendRequestList
	for offset := uint32(0); ; {
		var res protocol.FriendRequestList
		if _, err := c.Do(ctx, protocol.TypeFriendRequests, &protocol.FriendRequests{Offset: offset}, &res); err != nil {
			return all, err
		}
		all.Incoming = append(all.Incoming, res.Incoming...)
		all.Outgoing = append(all.Outgoing, res.Outgoing...)
		n := uint32(max(len(res.Incoming), len(res.Outgoing)))
		if !res.HasMore || n == 0 {
			return all, nil
		}
		offset += n
	}
}

// AnswerFriend accepts or declines the request from user.
func (c *Client) AnswerFriend(ctx context.Context, from int64, accept bool) error {
	return c.ok(ctx, protocol.TypeFriendAnswer, &protocol.FriendAnswer{From: from, Accept: accept})
}

// DeleteFriend ends a friendship, for both.
func (c *Client) DeleteFriend(ctx context.Context, user int64) error {
	return c.ok(ctx, protocol.TypeFriendDelete, &protocol.FriendDelete{UserID: user})
}

// Friends lists one's friends with their online status, asking for every
// page.
func (c *Client) Friends(ctx context.Context) ([]protocol.UserInfo, error) {
	var all []protocol.UserInfo
	for {
		var res protocol.FriendList
		if _, err := c.Do(ctx, protocol.TypeFriends, &protocol.Friends{Offset: uint32(len(all))}, &res); err != nil {
			return all, err
		}
		all = append(all, res.Friends...)
		if !res.HasMore || len(res.Friends) == 0 {
			return all, nil
		}
	}
}

// CreateGroup makes a group owned by oneself with the given members.
func (c *Client) CreateGroup(ctx context.Context, name string, open bool, members ...int64) (protocol.GroupInfo, error) {
	var res protocol.GroupInfo
	_, err := c.Do(ctx, protocol.TypeGroupCreate, &protocol.GroupCreate{Name: name, Members: members, Open: open}, &res)
	return res, err
}

// JoinGroup joins an open group.
func (c *Client) JoinGroup(ctx context.Context, group int64) (protocol.GroupInfo, error) {
	var res protocol.GroupInfo
	_, err := c.Do(ctx, protocol.TypeGroupJoin, &protocol.GroupJoin{GroupID: group}, &res)
	return res, err
}

// SetGroupOpen makes a group one owns open (anyone may find it with
// SearchGroups and join it) or closed (invitation only).
func (c *Client) SetGroupOpen(ctx context.Context, group int64, open bool) error {
	return c.ok(ctx, protocol.TypeGroupSetOpen, &protocol.GroupSetOpen{GroupID: group, Open: open})
}

// SearchGroups lists a page of the open groups whose name starts with
// prefix, in any letter case ("": all of them), ordered by lower-cased
// name, then id. The first page has afterName "" and afterID 0; the next
// one the NextName and NextID of the page before (NextID 0: no more).
// limit 0 asks for the server's default page, which it caps at 50.
func (c *Client) SearchGroups(ctx context.Context, prefix, afterName string, afterID int64, limit uint32) (protocol.OpenGroupList, error) {
	var res protocol.OpenGroupList
	_, err := c.Do(ctx, protocol.TypeGroupSearch, &protocol.GroupSearch{Prefix: prefix, AfterName: afterName, AfterID: afterID, Limit: limit}, &res)
	return res, err
}

// OpenGroupsNamed lists the open groups named name, ignoring letter case,
// by id: names are not unique, so a join by name picks among these (one:
// JoinGroup with its id).
func (c *Client) OpenGroupsNamed(ctx context.Context, name string) ([]protocol.GroupInfo, error) {
	var out []protocol.GroupInfo
	afterName, afterID := "", int64(0)
	// The groups named exactly name come first among those it prefixes.
	for range 4 {
		page, err := c.SearchGroups(ctx, name, afterName, afterID, 50)
		if err != nil {
			return nil, err
		}
		for _, g := range page.Groups {
			if !strings.EqualFold(g.Name, name) {
				return out, nil
			}
			out = append(out, g)
		}
		if page.NextID == 0 {
			break
		}
		afterName, afterID = page.NextName, page.NextID
	}
	return out, nil
}

// InviteToGroup adds users to a group one is a member of, all or none.
func (c *Client) InviteToGroup(ctx context.Context, group int64, users ...int64) error {
	return c.ok(ctx, protocol.TypeGroupInvite, &protocol.GroupInvite{GroupID: group, Users: users})
}

// LeaveGroup leaves a group.
func (c *Client) LeaveGroup(ctx context.Context, group int64) error {
	return c.ok(ctx, protocol.TypeGroupLeave, &protocol.GroupLeave{GroupID: group})
}

// RenameGroup renames a group one owns.
func (c *Client) RenameGroup(ctx context.Context, group int64, name string) error {
	return c.ok(ctx, protocol.TypeGroupRename, &protocol.GroupRename{GroupID: group, Name: name})
}

// RemoveFromGroup removes a member from a group one owns.
func (c *Client) RemoveFromGroup(ctx context.Context, group, user int64) error {
	return c.ok(ctx, protocol.TypeGroupRemove, &protocol.GroupRemove{GroupID: group, UserID: user})
}

// TransferGroup hands a group one owns to another member.
func (c *Client) TransferGroup(ctx context.Context, group, user int64) error {
	return c.ok(ctx, protocol.TypeGroupTransfer, &protocol.GroupTransfer{GroupID: group, UserID: user})
}

// DisbandGroup deletes a group one owns.
func (c *Client) DisbandGroup(ctx context.Context, group int64) error {
	return c.ok(ctx, protocol.TypeGroupDisband, &protocol.GroupDisband{GroupID: group})
}

// Groups lists the groups one is a member of.
func (c *Client) Groups(ctx context.Context) ([]protocol.GroupInfo, error) {
	var res protocol.GroupList
	_, err := c.Do(ctx, protocol.TypeGroups, &protocol.Groups{}, &res)
	return res.Groups, err
}

// GroupMembers lists a group's members with their online status, asking
// for every page.
func (c *Client) GroupMembers(ctx context.Context, group int64) ([]protocol.Member, error) {
	var all []protocol.Member
	for {
		var res protocol.MemberList
		if _, err := c.Do(ctx, protocol.TypeGroupMembers, &protocol.GroupMembers{GroupID: group, Offset: uint32(len(all))}, &res); err != nil {
			return all, err
		}
		all = append(all, res.Members...)
		if !res.HasMore || len(res.Members) == 0 {
			return all, nil
		}
	}
}
