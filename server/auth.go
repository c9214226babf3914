package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// Account rules; docs/protocol.md states them for clients.
const (
	minUsername = 3
	maxUsername = 32
	minPassword = 8
	maxPassword = 128
)

func validUsername(name string) bool {
	if len(name) < minUsername || len(name) > maxUsername {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// prehash lets passwords longer than bcrypt's 72-byte input count in full.
func prehash(password string) []byte {
	sum := sha256.Sum256([]byte(password))
	out := make([]byte, base64.StdEncoding.EncodedLen(len(sum)))
	base64.StdEncoding.Encode(out, sum[:])
	return out
}

// hashPassword and checkPassword run bcrypt on at most one goroutine per
// event loop, so logins cannot starve the loops of CPU.
func (s *Server) hashPassword(ctx context.Context, password string) ([]byte, error) {
	if err := s.acquireHash(ctx); err != nil {
		return nil, err
	}
	defer func() { <-s.hashSem }()
	return bcrypt.GenerateFromPassword(prehash(password), s.cfg.BcryptCost)
}

func (s *Server) checkPassword(ctx context.Context, hash []byte, password string) (bool, error) {
	if err := s.acquireHash(ctx); err != nil {
		return false, err
	}
	defer func() { <-s.hashSem }()
	return bcrypt.CompareHashAndPassword(hash, prehash(password)) == nil, nil
}

func (s *Server) acquireHash(ctx context.Context) error {
	select {
	case s.hashSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// dummyHash is compared against when the username does not exist, so that
// a wrong username costs as much time as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword(prehash("parley-no-such-user"), bcrypt.MinCost)

func (s *Server) handleRegister(c *call, r *protocol.Register) (any, error) {
	ctx := c.ctx
	fail := func(code protocol.Code, msg string) (any, error) {
		return nil, refuse(code, msg)
	}
	if !validUsername(r.Username) {
		return fail(protocol.CodeInvalidUsername, "username must be 3-32 of A-Z a-z 0-9 _ . -")
	}
	if len(r.Password) < minPassword || len(r.Password) > maxPassword {
		return fail(protocol.CodeWeakPassword, "password must be 8-128 bytes")
	}
	hash, err := s.hashPassword(ctx, r.Password)
	if err != nil {
		return nil, err
	}
	u, err := s.store.CreateUser(ctx, r.Username, hash)
	if errors.Is(err, storage.ErrUsernameTaken) {
		return fail(protocol.CodeUsernameTaken, "username is taken")
	}
	if err != nil {
		return nil, err
	}
	return s.loggedIn(ctx, c.ss, u, nil)
}

func (s *Server) handleLogin(c *call, l *protocol.Login) (any, error) {
	ctx, ss := c.ctx, c.ss
	now := time.Now()
	fail := func(code protocol.Code, msg string, until time.Time) (any, error) {
		e := &protoError{code: code, msg: msg}
		if !until.IsZero() {
			e.until = until.UnixMilli()
		}
		return nil, e
	}
	ipKey := "ip:" + ss.ip
	if blocked, until := s.logins.blocked(ipKey, s.cfg.LoginFailuresPerIP, now); blocked {
		return fail(protocol.CodeTooManyAttempts, "too many failed logins from this address", until)
	}

	if l.Token != "" {
		hash := tokenHash(l.Token)
		userID, expires, err := s.store.TokenUser(ctx, hash, now)
		if errors.Is(err, storage.ErrNotFound) {
			s.logins.fail(ipKey, now)
			return fail(protocol.CodeTokenInvalid, "resume token unknown, revoked or expired; log in with a password", time.Time{})
		}
		if err != nil {
			return nil, err
		}
		u, err := s.store.UserByID(ctx, userID)
		if err != nil {
			return nil, err
		}
		return s.loggedIn(ctx, ss, u, &resume{token: l.Token, hash: hash, expires: expires})
	}

	userKey := "u:" + strings.ToLower(l.Username)
	if blocked, until := s.logins.blocked(userKey, s.cfg.LoginFailuresPerUser, now); blocked {
		return fail(protocol.CodeTooManyAttempts, "too many failed logins for this user", until)
	}
	u, err := s.store.UserByName(ctx, l.Username)
	hash := dummyHash
	switch {
	case err == nil:
		hash = u.PassHash
	case !errors.Is(err, storage.ErrNotFound):
		return nil, err
	}
	ok, herr := s.checkPassword(ctx, hash, l.Password)
	if herr != nil {
		return nil, herr
	}
	if err != nil || !ok {
		s.logins.fail(userKey, now)
		s.logins.fail(ipKey, now)
		return fail(protocol.CodeBadCredentials, "wrong username or password", time.Time{})
	}
	s.logins.reset(userKey)
	return s.loggedIn(ctx, ss, u, nil)
}

// resume is the token a client logged in with.
type resume struct {
	token   string
	hash    []byte
	expires time.Time
}

// loggedIn finishes a login: a new resume token unless the client resumed
// with one, the session joins the hub, and LoginOK is the answer.
func (s *Server) loggedIn(ctx context.Context, ss *session, u storage.User, r *resume) (any, error) {
	now := time.Now()
	until, err := s.checkBan(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	if !until.IsZero() {
		return nil, &protoError{code: protocol.CodeBanned, msg: "account banned", until: until.UnixMilli()}
	}
	if moved := s.redirect(ss, u.ID); moved != nil {
		return moved, nil
	}
	if max := s.cfg.MaxConnsPerUser; max >= 0 && len(s.hub.sessionsOf(nil, u.ID)) >= max {
		return nil, refuse(protocol.CodeTooManySessions, "the account has as many connections as it may have")
	}
	if r == nil {
		token := newToken()
		r = &resume{token: token, hash: tokenHash(token), expires: now.Add(s.cfg.TokenTTL)}
		if err := s.store.CreateToken(ctx, r.hash, u.ID, r.expires); err != nil {
			return nil, err
		}
	}
	s.users.add(u.ID)
	ss.user.Store(u.ID)
	ss.username = u.Username
	ss.tokenHash = r.hash
	ss.state.Store(stateAuthed)
	if s.hub.login(u.ID, ss) {
		s.presence.loggedIn(u.ID)
	}
	if ss.closed.Load() {
		// OnClose ran before the session joined the hub.
		s.logout(u.ID, ss)
	}
	s.stats.logins.Add(1)
	s.log.Debug("login", "user", u.ID, "session", ss.id)
	return &protocol.LoginOK{
		UserID:       u.ID,
		Username:     u.Username,
		Token:        r.token,
		TokenExpires: r.expires.UnixMilli(),
		ServerTime:   now.UnixMilli(),
		Heartbeat:    s.cfg.Heartbeat.Milliseconds(),
		NodeID:       s.cfg.NodeID,
		SendWindow:   int64(s.cfg.MaxPendingSends),
	}, nil
}

func (s *Server) handleLogout(c *call, _ *protocol.Logout) (any, error) {
	ss := c.ss
	if err := s.store.DeleteToken(c.ctx, ss.tokenHash); err != nil {
		return nil, err
	}
	c.then = func() { ss.kick(protocol.KickLogout, "logged out") }
	return &protocol.OK{}, nil
}

func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func tokenHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}
