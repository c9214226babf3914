package server

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// The directory of open groups: an owner opens or closes a group
// (GroupSetOpen), anyone lists the open ones by name (GroupSearch) and
// joins one (GroupJoin, groups.go). GroupSearch and GroupJoin pass the
// directory's admission first (pipeline.go, Config.DirRatePerAddr).

// Pages of GroupSearch: the default and the most one answer holds.
const (
	defaultDirPage = 20
	maxDirPage     = 50
)

// validGroupName: 1-64 bytes of UTF-8 that are not all white space, with
// no control or bidirectional-control characters, since any user may see
// an open group's name in the directory.
func validGroupName(name string) bool {
	if name == "" || len(name) > maxGroupName || !utf8.ValidString(name) || strings.TrimSpace(name) == "" {
		return false
	}
	return !strings.ContainsFunc(name, func(r rune) bool {
		return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)
	})
}

const badGroupName = "a group name must be 1-64 bytes of UTF-8 text, without control characters"

func (s *Server) handleGroupSetOpen(c *call, q *protocol.GroupSetOpen) (any, error) {
	ctx, user := c.ctx, c.user
	g, err := s.owned(ctx, q.GroupID, user)
	if err != nil {
		return nil, err
	}
	if g.Open == q.Open {
		return &protocol.OK{}, nil
	}
	if err := s.store.SetGroupOpen(ctx, g.ID, q.Open); err != nil {
		return nil, err
	}
	kind := protocol.GroupClosed
	if q.Open {
		kind = protocol.GroupOpened
	}
	s.announce(ctx, g.ID, c.ss, &protocol.GroupEvent{GroupID: g.ID, Kind: kind, Actor: user})
	return &protocol.OK{}, nil
}

func (s *Server) handleGroupSearch(c *call, q *protocol.GroupSearch) (any, error) {
	if len(q.Prefix) > maxGroupName || !utf8.ValidString(q.Prefix) ||
		len(q.AfterName) > maxGroupName*4 || !utf8.ValidString(q.AfterName) || q.AfterID < 0 {
		return nil, refuse(protocol.CodeBadBody, "prefix and after_name: UTF-8 of at most a group name's length")
	}
	limit := int(q.Limit)
	switch {
	case limit == 0:
		limit = defaultDirPage
	case limit > maxDirPage:
		limit = maxDirPage
	}
	// One more than asked tells whether a next page exists.
	gs, err := s.store.OpenGroups(c.ctx, q.Prefix, q.AfterName, q.AfterID, limit+1)
	if err != nil {
		return nil, err
	}
	res := protocol.OpenGroupList{Groups: make([]protocol.GroupInfo, 0, min(len(gs), limit))}
	if len(gs) > limit {
		gs = gs[:limit]
		last := gs[limit-1]
		res.NextName, res.NextID = storage.DirectoryName(last.Name), last.ID
	}
	for _, g := range gs {
		res.Groups = append(res.Groups, groupInfo(g))
	}
	return &res, nil
}
