package server

import (
	"context"
	"time"

	"github.com/parleyim/parley/protocol"
)

// Bans are made by the admin tools (parleyd admin ban), possibly in another
// process, straight in the store. Logins check them; connected users are
// found by a poll of the bans in force, every BanPoll.

// watchBans kicks the connections of banned users until done is closed.
func (s *Server) watchBans(done <-chan struct{}) {
	defer close(s.bansStopped)
	tick := time.NewTicker(s.cfg.BanPoll)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		s.kickBanned()
	}
}

func (s *Server) kickBanned() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	bans, err := s.store.ActiveBans(ctx, time.Now())
	if err != nil {
		s.log.Warn("ban poll failed", "err", err)
		return
	}
	var targets []*session
	for _, b := range bans {
		targets = s.hub.sessionsOf(targets[:0], b.UserID)
		for _, ss := range targets {
			ss.kickWith(protocol.Kick{Reason: protocol.KickBanned, Message: "account banned", Until: b.Until.UnixMilli()})
		}
	}
}

// checkBan returns the end of user's ban in force, or the zero time.
func (s *Server) checkBan(ctx context.Context, user int64) (time.Time, error) {
	return s.store.BannedUntil(ctx, user, time.Now())
}
