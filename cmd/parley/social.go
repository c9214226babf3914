package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/cmd/parley/ui"
	"github.com/parleyim/parley/protocol"
)

// friendDo is add, accept, decline or unfriend.
func friendDo(verb string) func(*app, context.Context, *client.Client, []string) error {
	return func(a *app, ctx context.Context, c *client.Client, args []string) error {
		u, err := ui.FindUser(ctx, c, args[0])
		if err != nil {
			return err
		}
		var done, text string
		switch verb {
		case "add":
			err = c.RequestFriend(ctx, u.UserID, strings.Join(args[1:], " "))
			done, text = "requested", "friend request sent to "+u.Username
		case "accept":
			err = c.AnswerFriend(ctx, u.UserID, true)
			done, text = "accepted", u.Username+" is now your friend"
		case "decline":
			err = c.AnswerFriend(ctx, u.UserID, false)
			done, text = "declined", "declined "+u.Username+"'s friend request"
		case "unfriend":
			err = c.DeleteFriend(ctx, u.UserID)
			done, text = "unfriended", u.Username+" is no longer your friend"
		}
		if err != nil {
			return err
		}
		return a.emit(doneJSON{Done: done, UserID: u.UserID, Username: u.Username}, text)
	}
}

func (a *app) friends(ctx context.Context, c *client.Client, _ []string) error {
	fs, err := c.Friends(ctx)
	if err != nil {
		return err
	}
	out := make([]userJSON, 0, len(fs))
	var text []string
	for _, f := range fs {
		out = append(out, userJSON{f.UserID, f.Username, f.Online})
		text = append(text, f.Username+"\t"+onOff(f.Online))
	}
	return a.emit(out, text...)
}

func (a *app) requests(ctx context.Context, c *client.Client, _ []string) error {
	l, err := c.FriendRequests(ctx)
	if err != nil {
		return err
	}
	out := requestsJSON{Incoming: []requestJSON{}, Outgoing: []requestJSON{}}
	var text []string
	for _, r := range l.Incoming {
		out.Incoming = append(out.Incoming, requestJSON{r.From.UserID, r.From.Username, r.Note, r.Created})
		text = append(text, fmt.Sprintf("from %s: %s\t(parley accept %s)", r.From.Username, oneLine(r.Note), r.From.Username))
	}
	for _, r := range l.Outgoing {
		out.Outgoing = append(out.Outgoing, requestJSON{r.To.UserID, r.To.Username, r.Note, r.Created})
		text = append(text, "to "+r.To.Username+": waiting for an answer")
	}
	return a.emit(out, text...)
}

func (a *app) groups(ctx context.Context, c *client.Client, _ []string) error {
	gs, err := c.Groups(ctx)
	if err != nil {
		return err
	}
	out := make([]groupJSON, 0, len(gs))
	var text []string
	for _, g := range gs {
		out = append(out, groupOf(g))
		text = append(text, fmt.Sprintf("#%d\t%s\t%d members\t%s", g.GroupID, oneLine(g.Name), g.Members, openness(g.Open)))
	}
	return a.emit(out, text...)
}

func (a *app) groupCreate(ctx context.Context, c *client.Client, args []string) error {
	var ids []int64
	for _, n := range args[1:] {
		u, err := ui.FindUser(ctx, c, n)
		if err != nil {
			return err
		}
		ids = append(ids, u.UserID)
	}
	g, err := c.CreateGroup(ctx, args[0], a.open, ids...)
	if err != nil {
		return err
	}
	return a.emit(groupOf(g), fmt.Sprintf("created #%s (id %d, %s, %d members)", oneLine(g.Name), g.GroupID, openness(g.Open), g.Members))
}

// groupList lists the first page of open groups.
func (a *app) groupList(ctx context.Context, c *client.Client, args []string) error {
	prefix := ""
	if len(args) > 0 {
		prefix = args[0]
	}
	page, err := c.SearchGroups(ctx, prefix, "", 0, 50)
	if err != nil {
		return err
	}
	out := make([]groupJSON, 0, len(page.Groups))
	var text []string
	for _, g := range page.Groups {
		out = append(out, groupOf(g))
		text = append(text, fmt.Sprintf("#%d\t%s\t%d members", g.GroupID, oneLine(g.Name), g.Members))
	}
	return a.emit(out, text...)
}

// groupJoin joins an open group by id (digits, or #digits), or by name
// among the open groups: names repeat, so several matches ask for an id.
func (a *app) groupJoin(ctx context.Context, c *client.Client, args []string) error {
	id, err := strconv.ParseInt(strings.TrimPrefix(args[0], "#"), 10, 64)
	if err != nil || id < 1 {
		gs, err := c.OpenGroupsNamed(ctx, args[0])
		if err != nil {
			return err
		}
		switch len(gs) {
		case 0:
			return &exitError{code: exitRefused, msg: fmt.Sprintf("no open group is named %q (parley group list)", args[0]), wire: protocol.CodeNoSuchGroup.String()}
		case 1:
			id = gs[0].GroupID
		default:
			ids := make([]string, len(gs))
			for i, g := range gs {
				ids[i] = fmt.Sprintf("%d (%d members)", g.GroupID, g.Members)
			}
			return failf(exitUsage, "%d open groups are named %q: parley group join ID, with one of %s", len(gs), args[0], strings.Join(ids, ", "))
		}
	}
	g, err := c.JoinGroup(ctx, id)
	if err != nil {
		return err
	}
	return a.emit(groupOf(g), fmt.Sprintf("joined #%s (id %d)", oneLine(g.Name), g.GroupID))
}

func (a *app) groupInvite(ctx context.Context, c *client.Client, args []string) error {
	t, err := a.resolve(ctx, c, args[0], true)
	if err != nil {
		return err
	}
	var ids []int64
	for _, n := range args[1:] {
		u, err := ui.FindUser(ctx, c, n)
		if err != nil {
			return err
		}
		ids = append(ids, u.UserID)
	}
	if err := c.InviteToGroup(ctx, t.group, ids...); err != nil {
		return err
	}
	return a.emit(doneJSON{Done: "invited", GroupID: t.group}, fmt.Sprintf("added %s to %s", strings.Join(args[1:], ", "), t.title))
}

func (a *app) groupLeave(ctx context.Context, c *client.Client, args []string) error {
	t, err := a.resolve(ctx, c, args[0], true)
	if err != nil {
		return err
	}
	if err := c.LeaveGroup(ctx, t.group); err != nil {
		return err
	}
	return a.emit(doneJSON{Done: "left", GroupID: t.group}, "you left "+t.title)
}

func (a *app) groupMembers(ctx context.Context, c *client.Client, args []string) error {
	t, err := a.resolve(ctx, c, args[0], true)
	if err != nil {
		return err
	}
	ms, err := c.GroupMembers(ctx, t.group)
	if err != nil {
		return err
	}
	out := make([]memberJSON, 0, len(ms))
	var text []string
	for _, m := range ms {
		out = append(out, memberJSON{m.UserID, m.Username, m.Online, m.Owner})
		line := m.Username + "\t" + onOff(m.Online)
		if m.Owner {
			line += "\towner"
		}
		text = append(text, line)
	}
	return a.emit(out, text...)
}

// groupOpenDo opens or closes a group the caller owns.
func groupOpenDo(open bool) func(a *app, ctx context.Context, c *client.Client, args []string) error {
	return func(a *app, ctx context.Context, c *client.Client, args []string) error {
		t, err := a.resolve(ctx, c, args[0], true)
		if err != nil {
			return err
		}
		if err := c.SetGroupOpen(ctx, t.group, open); err != nil {
			return err
		}
		return a.emit(doneJSON{Done: openness(open), GroupID: t.group}, t.title+" is "+openness(open))
	}
}

func onOff(online bool) string {
	if online {
		return "online"
	}
	return "offline"
}

func openness(open bool) string {
	if open {
		return "open"
	}
	return "invite-only"
}

// oneLine is text from others made safe for one line of a terminal.
func oneLine(s string) string { return strings.ReplaceAll(ui.Clean(s), "\n", " ") }
