package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server/files"
	"github.com/parleyim/parley/storage"
)

// The file endpoint (attachments) runs beside the gnet engine on a net/http
// listener of its own: its transfers are long and streamed, nothing of them
// touches an event loop. server/files has the handlers; this file starts
// and stops them and answers their two questions (fileAccess).

// maxFileConns caps the endpoint's connections; more wait in the backlog.
const maxFileConns = 512

// startFiles listens on FilesAddr and serves the endpoint.
func (s *Server) startFiles() error {
	if s.cfg.FilesAddr == "" {
		return nil
	}
	fc := s.cfg.Files
	fc.Store, fc.Access, fc.Logger = s.cfg.Blobs, fileAccess{s}, s.log
	svc, err := files.New(fc)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", s.cfg.FilesAddr)
	if err != nil {
		return fmt.Errorf("server: file endpoint: %w", err)
	}
	s.filesAddr = l.Addr().String()
	if s.filesURL == "" {
		s.filesURL = "http://" + s.filesAddr
	}
	s.files = svc
	s.filesHTTP = &http.Server{
		Handler:           svc.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          nil,
	}
	go func() {
		if err := s.filesHTTP.Serve(netutil.LimitListener(s.Listener(l), maxFileConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("file endpoint stopped", "err", err)
		}
	}()
	s.log.Info("file endpoint", "addr", s.filesAddr, "url", s.filesURL)
	return nil
}

// stopFiles refuses new transfers and waits for those running until ctx
// ends, then cuts them.
func (s *Server) stopFiles(ctx context.Context) {
	if s.filesHTTP == nil {
		return
	}
	s.files.Stopping()
	if err := s.filesHTTP.Shutdown(ctx); err != nil {
		_ = s.filesHTTP.Close()
	}
}

// FilesAddr is the address the file endpoint listens on ("" if none).
func (s *Server) FilesAddr() string { return s.filesAddr }

// FilesURL is the endpoint's base URL told to clients ("" if none).
func (s *Server) FilesURL() string { return s.filesURL }

// fileAccess answers the file endpoint's questions from the store.
type fileAccess struct{ s *Server }

func (a fileAccess) TokenUser(ctx context.Context, token string) (int64, error) {
	if len(token) > maxToken {
		return 0, files.ErrUnauthorized
	}
	user, _, err := a.s.store.TokenUser(ctx, tokenHash(token), time.Now())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return 0, files.ErrUnauthorized
	case err != nil:
		return 0, err
	}
	until, err := a.s.checkBan(ctx, user)
	switch {
	case err != nil:
		return 0, err
	case !until.IsZero():
		return 0, files.ErrBanned
	}
	return user, nil
}

func (a fileAccess) Message(ctx context.Context, user int64, conv string, seq uint64) (protocol.Message, error) {
	if err := a.s.member(ctx, user, conv); err != nil {
		var pe *protoError
		if errors.As(err, &pe) {
			return protocol.Message{}, files.ErrForbidden
		}
		return protocol.Message{}, err
	}
	msgs, _, _, _, err := a.s.store.After(ctx, user, conv, seq-1, 1)
	if err != nil {
		return protocol.Message{}, err
	}
	if len(msgs) == 0 || msgs[0].Seq != seq {
		return protocol.Message{}, files.ErrForbidden // no such message, or deleted for user
	}
	return msgs[0], nil
}

// checkAttachment refuses a Send of an attachment whose body is not one.
func checkAttachment(m *protocol.Send) error {
	if m.ContentType != protocol.ContentAttachment {
		return nil
	}
	if _, err := protocol.DecodeAttachment(m.Body); err != nil {
		return refuse(protocol.CodeBadAttachment, err.Error())
	}
	return nil
}
