package server

import (
	"bytes"
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

// Password hashing has its own admission: at most HashWorkers hashes run at
// once and HashQueue wait; a hash past them is refused BUSY at once, so a
// flood of Registers or Logins holds at most HashWorkers+HashQueue of the
// shared workers and never starves the Sends of logged-in users.
//
// A hash's slot is kept for as long again after it ends (releaseHash), so
// that hashing takes at most half of HashWorkers CPUs however hard it is
// flooded, and the rest of the server keeps its CPU.
//
// A hash is for its connection: one that has closed (or been kicked) by the
// time its turn comes, or while it waits for it, gives its place up, so a
// flood that registers and hangs up leaves no queue of hashes behind it
// for the honest logins to wait out.
func (s *Server) hashPassword(ctx context.Context, ss *session, password string) ([]byte, error) {
	if err := s.acquireHash(ctx, ss); err != nil {
		return nil, err
	}
	defer s.releaseHash(time.Now())
	return bcrypt.GenerateFromPassword(prehash(password), s.cfg.BcryptCost)
}

func (s *Server) checkPassword(ctx context.Context, ss *session, hash []byte, password string) (bool, error) {
	if err := s.acquireHash(ctx, ss); err != nil {
		return false, err
	}
	defer s.releaseHash(time.Now())
	return bcrypt.CompareHashAndPassword(hash, prehash(password)) == nil, nil
}

// releaseHash frees a hash slot taken at start, after a rest as long as
// the hash took.
func (s *Server) releaseHash(start time.Time) {
	rest := time.Since(start)
	time.AfterFunc(rest, func() { <-s.hashSem })
}

// hashGoneCheck is how often a hash waiting for its slot checks that its
// connection is still open.
const hashGoneCheck = 50 * time.Millisecond

func (s *Server) acquireHash(ctx context.Context, ss *session) error {
	if ss.gone() {
		return errHashGone
	}
	select {
	case s.hashSem <- struct{}{}:
		return nil
	default:
	}
	if s.hashWaiting.Add(1) > int64(s.cfg.HashQueue) {
		s.hashWaiting.Add(-1)
		return refuse(protocol.CodeBusy, "too many logins in progress; retry")
	}
	defer s.hashWaiting.Add(-1)
	// A timer only while waiting: the session has no channel to close (it
	// would cost every connection its bytes).
	tick := time.NewTicker(hashGoneCheck)
	defer tick.Stop()
	for {
		select {
		case s.hashSem <- struct{}{}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-s.quit:
			return refuse(protocol.CodeShutdown, "server shutting down")
		case <-tick.C:
			if ss.gone() {
				return errHashGone
			}
		}
	}
}

// errHashGone answers a Register or Login whose connection closed before
// its hash ran; nobody reads the answer.
var errHashGone = refuse(protocol.CodeBusy, "the connection closed while its login waited")

func (s *Server) handleRegister(c *call, r *protocol.Register) (any, error) {
	ctx := c.ctx
	if !validUsername(r.Username) {
		return nil, refuse(protocol.CodeInvalidUsername, "username must be 3-32 of A-Z a-z 0-9 _ . -")
	}
	if len(r.Password) < minPassword || len(r.Password) > maxPassword {
		return nil, refuse(protocol.CodeWeakPassword, "password must be 8-128 bytes")
	}
	// The cheap check before the hash: a taken name costs no hash.
	switch _, err := s.store.UserByName(ctx, r.Username); {
	case err == nil:
		return nil, refuse(protocol.CodeUsernameTaken, "username is taken")
	case !errors.Is(err, storage.ErrNotFound):
		return nil, err
	}
	hash, err := s.hashPassword(ctx, c.ss, r.Password)
	if err != nil {
		return nil, err
	}
	u, err := s.store.CreateUser(ctx, r.Username, hash)
	if errors.Is(err, storage.ErrUsernameTaken) {
		return nil, refuse(protocol.CodeUsernameTaken, "username is taken")
	}
	if err != nil {
		return nil, err
	}
	return s.loggedIn(c, u, nil)
}

// Failed logins are limited so that they slow an attacker without locking
// the owner out (docs/protocol.md, Accounts and sessions):
//
//   - per address: LoginFailuresPerIP failures in a window, any account;
//   - per (account, address): LoginFailuresPerUser failures in a window,
//     the window doubling for a pair that is blocked again (back-off);
//   - per account from every address: LoginFailuresPerAccount failures in
//     a window; past it only addresses the account has logged in from
//     before may try its password.
//
// Resume tokens are not limited by the account's failures.
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
	ipKey := "ip:" + ss.addr
	if blocked, until := s.logins.blocked(ipKey, s.cfg.LoginFailuresPerIP, now); blocked {
		return fail(protocol.CodeTooManyAttempts, "too many failed logins from this address", until)
	}

	if l.Token != "" {
		if len(l.Token) > maxToken {
			s.logins.fail(ipKey, now)
			return fail(protocol.CodeTokenInvalid, "resume token unknown, revoked or expired; log in with a password", time.Time{})
		}
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
		return s.loggedIn(c, u, &resume{token: l.Token, hash: hash, expires: expires})
	}

	// A name no account can have is refused before any bookkeeping; it
	// tells nothing about which accounts exist.
	if !validUsername(l.Username) || len(l.Password) > maxPassword {
		s.logins.fail(ipKey, now)
		return fail(protocol.CodeBadCredentials, "wrong username or password", time.Time{})
	}
	name := strings.ToLower(l.Username)
	pairKey := "ua:" + name + "|" + ss.addr
	acctKey := "u:" + name
	if blocked, until := s.logins.blocked(pairKey, s.cfg.LoginFailuresPerUser, now); blocked {
		return fail(protocol.CodeTooManyAttempts, "too many failed logins for this user from this address", until)
	}
	if blocked, until := s.logins.blocked(acctKey, s.cfg.LoginFailuresPerAccount, now); blocked && !s.known.has(name, ss.addr) {
		return fail(protocol.CodeTooManyAttempts, "too many failed logins for this user; log in from a known address or with a token", until)
	}
	u, err := s.store.UserByName(ctx, l.Username)
	hash := s.dummyHash
	switch {
	case err == nil:
		hash = u.PassHash
	case !errors.Is(err, storage.ErrNotFound):
		return nil, err
	}
	ok, herr := s.checkPassword(ctx, ss, hash, l.Password)
	if herr != nil {
		return nil, herr
	}
	if err != nil || !ok {
		s.logins.failBackoff(pairKey, s.cfg.LoginFailuresPerUser, now)
		s.logins.fail(acctKey, now)
		s.logins.fail(ipKey, now)
		return fail(protocol.CodeBadCredentials, "wrong username or password", time.Time{})
	}
	s.logins.reset(pairKey)
	return s.loggedIn(c, u, nil)
}

// maxToken is longer than any token newToken makes.
const maxToken = 128

// resume is the token a client logged in with.
type resume struct {
	token   string
	hash    []byte
	expires time.Time
}

// loggedIn finishes a login: a new resume token unless the client resumed
// with one, LoginOK is the answer, and the session joins the hub as it is
// queued.
func (s *Server) loggedIn(c *call, u storage.User, r *resume) (any, error) {
	ctx, ss := c.ctx, c.ss
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
	// The place is held from here until the session joins the hub in then
	// (dispatch always runs it) or the login fails below.
	if !s.hub.reserve(u.ID, s.cfg.MaxConnsPerUser) {
		return nil, refuse(protocol.CodeTooManySessions, "the account has as many connections as it may have")
	}
	if r == nil {
		token := newToken()
		r = &resume{token: token, hash: tokenHash(token), expires: now.Add(s.cfg.TokenTTL)}
		if err := s.store.CreateToken(ctx, r.hash, u.ID, r.expires); err != nil {
			s.hub.unreserve(u.ID)
			return nil, err
		}
	}
	s.known.add(strings.ToLower(u.Username), ss.addr)
	ss.user.Store(u.ID)
	// The session keeps the token's hash alone (for Logout and revocation),
	// not the resume or the token itself.
	hash := [sha256.Size]byte(r.hash)
	ss.tokenSeen.Store(&hash)
	ss.state.Store(stateAuthed)
	// The session joins the hub, where pushes and kicks find it, in the
	// same step as its LoginOK is queued (session.writeWith): every push
	// that finds it is queued behind the LoginOK, and the LoginOK cannot
	// leave before the session is in the hub, so a message committed once
	// the client has its LoginOK is pushed, not left for a later Sync.
	var first bool
	c.with = func() { first = s.hub.login(u.ID, ss) }
	c.then = func() {
		if h := s.loginQueued; h != nil {
			h()
		}
		if first {
			s.presence.loggedIn(u.ID)
		}
		if ss.closed.Load() {
			// OnClose ran before the session joined the hub.
			s.logout(u.ID, ss)
		}
	}
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
		MaxMessage:   int64(s.cfg.MaxMessage),
		FilesURL:     s.filesURL,
	}, nil
}

func (s *Server) handleLogout(c *call, _ *protocol.Logout) (any, error) {
	ss := c.ss
	token := ss.token()
	if err := s.store.DeleteToken(c.ctx, token); err != nil {
		return nil, err
	}
	c.then = func() {
		ss.kick(protocol.KickLogout, "logged out")
		// The token is revoked everywhere: the other connections that
		// logged in with it are closed too.
		for _, o := range s.hub.sessionsOf(nil, c.user) {
			if o != ss && bytes.Equal(o.token(), token) {
				o.kick(protocol.KickSessionRevoked, "the session was logged out")
			}
		}
	}
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
