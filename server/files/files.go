// Package files is the HTTP endpoint of attachments: authenticated uploads
// into a content-addressed blob.Store and downloads for those who may read
// them. The server runs it on a listener of its own (server.Config
// FilesAddr); docs/protocol.md, "The file endpoint", is its contract.
//
// Authorization: every request carries the resume token of a LoginOK
// (Authorization: Bearer). An upload records its user as an owner of the
// file. A download is allowed to an owner, or to a user who names a message
// (conv and seq) that the user may read now (a member of the conversation,
// the message not deleted for that user) whose body is an Attachment of
// that file and whose sender is an owner of the file. Knowing a hash thus
// grants nothing: a file reaches a conversation only through a message of
// someone who uploaded it, and a member removed from a group loses access
// with the membership. A client that forwards a file uploads it again
// (stored once: the hash is the same) and becomes an owner.
package files

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"image"
	_ "image/gif" // image dimensions of uploads
	_ "image/jpeg"
	_ "image/png"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage/blob"
)

// Access is what the endpoint asks the server.
type Access interface {
	// TokenUser returns the account of a resume token: ErrUnauthorized if
	// the token is unknown, revoked or expired, ErrBanned if the account
	// is banned.
	TokenUser(ctx context.Context, token string) (int64, error)
	// Message returns message seq of conv if user may read it now, else
	// ErrForbidden (not a member, no such message, deleted for user).
	Message(ctx context.Context, user int64, conv string, seq uint64) (protocol.Message, error)
}

// Config of the endpoint. Zero values take the defaults beside them.
type Config struct {
	Store  blob.Store // required
	Access Access     // required
	// SpoolDir holds uploads until their hash is known. Default: the
	// Disk store's tmp directory, else the system's.
	SpoolDir string
	// MaxSize is the largest file in bytes. Default 25 MiB.
	MaxSize int64
	// MaxUploadsPerUser uploads may run at once per user. Default 4.
	MaxUploadsPerUser int
	// MaxBytesPerUser bounds the Content-Length sum of one user's uploads
	// in progress. Default 2×MaxSize.
	MaxBytesPerUser int64
	// MaxUploads and MaxBytes are the same bounds for the whole server.
	// Defaults 64 and 512 MiB.
	MaxUploads int
	MaxBytes   int64
	// MaxDownloadsPerUser and MaxDownloads bound downloads at once.
	// Defaults 8 and 256.
	MaxDownloadsPerUser int
	MaxDownloads        int
	// IdleTimeout ends a transfer that moves no byte for this long.
	// Default 15s.
	IdleTimeout time.Duration
	// MinRate is the slowest a transfer may be on average, in bytes per
	// second, after a grace of IdleTimeout: a transfer of n bytes gets
	// IdleTimeout + n/MinRate in all. Default 32 KiB/s.
	MinRate int64
	Logger  *slog.Logger
}

func (c *Config) fill() error {
	if c.Store == nil || c.Access == nil {
		return errors.New("files: Config needs Store and Access")
	}
	if c.SpoolDir == "" {
		if d, ok := c.Store.(*blob.Disk); ok {
			c.SpoolDir = d.TmpDir()
		} else {
			c.SpoolDir = os.TempDir()
		}
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def64 := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	def64(&c.MaxSize, 25<<20)
	def(&c.MaxUploadsPerUser, 4)
	def64(&c.MaxBytesPerUser, 2*c.MaxSize)
	def(&c.MaxUploads, 64)
	def64(&c.MaxBytes, 512<<20)
	def(&c.MaxDownloadsPerUser, 8)
	def(&c.MaxDownloads, 256)
	def64(&c.MinRate, 32<<10)
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Service is the endpoint.
type Service struct {
	cfg      Config
	adm      *admission
	mux      *http.ServeMux
	stopping atomic.Bool
}

// New checks cfg and builds the endpoint.
func New(cfg Config) (*Service, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o750); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, adm: newAdmission(&cfg)}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /v1/files", s.upload)
	s.mux.HandleFunc("GET /v1/files/{sum}", s.download)
	return s, nil
}

// Handler serves the endpoint.
func (s *Service) Handler() http.Handler { return s.mux }

// Stopping makes new transfers answer SHUTDOWN; those running finish.
func (s *Service) Stopping() { s.stopping.Store(true) }

// Uploaded is the JSON answer of an upload: the fields of the
// protocol.Attachment to send, the hash in hex.
type Uploaded struct {
	Name   string `json:"name"`
	MIME   string `json:"mime"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Width  uint32 `json:"width,omitempty"`
	Height uint32 `json:"height,omitempty"`
	URL    string `json:"url"`
}

// user authenticates a request.
func (s *Service) user(r *http.Request) (int64, *httpError) {
	if s.stopping.Load() {
		return 0, errShutdown
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return 0, errNoToken
	}
	user, err := s.cfg.Access.TokenUser(r.Context(), strings.TrimSpace(token))
	switch {
	case errors.Is(err, ErrUnauthorized):
		return 0, errTokenInvalid
	case errors.Is(err, ErrBanned):
		return 0, errBanned
	case err != nil:
		s.cfg.Logger.Warn("files: token check failed", "err", err)
		return 0, errUnavailable
	}
	return user, nil
}

// sniffLen is what the upload keeps of a file's start: http.DetectContentType
// reads 512 bytes, image headers (a JPEG's SOF) may come later.
const sniffLen = 64 << 10

func (s *Service) upload(w http.ResponseWriter, r *http.Request) {
	// A refused upload is not read: the connection closes after the answer.
	fail := func(e *httpError) {
		w.Header().Set("Connection", "close")
		e.write(w)
	}
	user, herr := s.user(r)
	if herr != nil {
		fail(herr)
		return
	}
	name := r.URL.Query().Get("name")
	if !protocol.ValidFileName(name) {
		fail(errBadName)
		return
	}
	size := r.ContentLength
	switch {
	case size < 0:
		fail(errLength)
		return
	case size > s.cfg.MaxSize:
		fail(errTooLarge(s.cfg.MaxSize))
		return
	}
	release, herr := s.adm.upload(user, size)
	if herr != nil {
		fail(herr)
		return
	}
	defer release()

	f, err := os.CreateTemp(s.cfg.SpoolDir, "upload-*")
	if err != nil {
		s.cfg.Logger.Error("files: spool", "err", err)
		fail(errUnavailable)
		return
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	h := sha256.New()
	var head bytes.Buffer
	if herr := s.receive(w, r.Body, size, io.MultiWriter(f, h, &capped{&head, sniffLen})); herr != nil {
		fail(herr)
		return
	}
	var sum blob.Sum
	h.Sum(sum[:0])
	ctx := r.Context()
	// The owner record first: it marks the file uploaded now, so the
	// collector (gc.go) either sees the mark and keeps the file, or has
	// moved it away before store looks, which then stores it again.
	if err := s.cfg.Store.AddOwner(ctx, sum, user); err != nil {
		s.cfg.Logger.Warn("files: owner", "err", err, "sha256", sum.String())
		fail(errUnavailable)
		return
	}
	if err := s.store(ctx, f, sum, size); err != nil {
		s.cfg.Logger.Warn("files: store", "err", err, "sha256", sum.String())
		fail(errUnavailable)
		return
	}
	up := Uploaded{Name: name, MIME: http.DetectContentType(head.Bytes()), Size: size, SHA256: sum.String(), URL: protocol.FilePath(sum[:])}
	if strings.HasPrefix(up.MIME, "image/") {
		if c, _, err := image.DecodeConfig(bytes.NewReader(head.Bytes())); err == nil && c.Width > 0 && c.Height > 0 {
			up.Width, up.Height = uint32(c.Width), uint32(c.Height)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", up.URL)
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(up)
}

// receive copies size bytes of body to dst under the transfer deadlines.
func (s *Service) receive(w http.ResponseWriter, body io.Reader, size int64, dst io.Writer) *httpError {
	rc := http.NewResponseController(w)
	end := time.Now().Add(s.cfg.IdleTimeout + time.Duration(size/s.cfg.MinRate)*time.Second)
	buf := make([]byte, 64<<10)
	var got int64
	for got < size {
		d := earlier(time.Now().Add(s.cfg.IdleTimeout), end)
		if !d.After(time.Now()) {
			return errTimeout
		}
		if err := rc.SetReadDeadline(d); err != nil {
			return errUnavailable
		}
		n, err := body.Read(buf[:min(int64(len(buf)), size-got)])
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				s.cfg.Logger.Error("files: spool", "err", werr)
				return errUnavailable
			}
			got += int64(n)
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			return errTimeout
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			if got < size {
				return errIncomplete
			}
		default:
			return errIncomplete
		}
	}
	_ = rc.SetReadDeadline(time.Time{})
	return nil
}

// adopter is a Store that can take a spooled file as it is (blob.Disk: a
// rename), sparing a copy.
type adopter interface {
	Adopt(ctx context.Context, sum blob.Sum, path string, size int64) error
}

func (s *Service) store(ctx context.Context, f *os.File, sum blob.Sum, size int64) error {
	if err := f.Sync(); err != nil {
		return err
	}
	if a, ok := s.cfg.Store.(adopter); ok {
		return a.Adopt(ctx, sum, f.Name(), size)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return s.cfg.Store.Put(ctx, sum, f, size)
}

// capped keeps the first max bytes written to it.
type capped struct {
	b   *bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.b.Len(); room > 0 {
		c.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (s *Service) download(w http.ResponseWriter, r *http.Request) {
	sum, ok := blob.ParseSum(r.PathValue("sum"))
	if !ok {
		errBadFileID.write(w)
		return
	}
	user, herr := s.user(r)
	if herr != nil {
		herr.write(w)
		return
	}
	name, herr := s.authorize(r, user, sum)
	if herr != nil {
		herr.write(w)
		return
	}
	release, herr := s.adm.download(user)
	if herr != nil {
		herr.write(w)
		return
	}
	defer release()
	rd, size, err := s.cfg.Store.Open(r.Context(), sum)
	switch {
	case errors.Is(err, blob.ErrNotFound):
		errNotFound.write(w)
		return
	case err != nil:
		s.cfg.Logger.Warn("files: open", "err", err, "sha256", sum.String())
		errUnavailable.write(w)
		return
	}
	defer rd.Close()
	// The type is sniffed again from the content: a message's mime is
	// what its sender wrote.
	br := bufio.NewReaderSize(rd, 32<<10)
	head, _ := br.Peek(512)
	h := w.Header()
	h.Set("Content-Type", http.DetectContentType(head))
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	h.Set("ETag", `"`+sum.String()+`"`)
	rc := http.NewResponseController(w)
	end := time.Now().Add(s.cfg.IdleTimeout + time.Duration(size/s.cfg.MinRate)*time.Second)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := br.Read(buf)
		if n > 0 {
			d := earlier(time.Now().Add(s.cfg.IdleTimeout), end)
			if err := rc.SetWriteDeadline(d); err != nil {
				return
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return // the client is gone or too slow: the connection closes
			}
		}
		if rerr == io.EOF {
			return
		}
		if rerr != nil {
			s.cfg.Logger.Warn("files: read", "err", rerr, "sha256", sum.String())
			panic(http.ErrAbortHandler) // the client sees a cut transfer, not a short file
		}
	}
}

// authorize decides whether user may download sum and under which name.
func (s *Service) authorize(r *http.Request, user int64, sum blob.Sum) (string, *httpError) {
	ctx := r.Context()
	q := r.URL.Query()
	conv, seqText := q.Get("conv"), q.Get("seq")
	if conv == "" && seqText == "" {
		ok, err := s.cfg.Store.IsOwner(ctx, sum, user)
		switch {
		case err != nil:
			return "", errUnavailable
		case !ok:
			return "", errForbidden
		}
		return sum.String(), nil
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if conv == "" || err != nil || seq == 0 {
		return "", errBadMessage
	}
	m, err := s.cfg.Access.Message(ctx, user, conv, seq)
	switch {
	case errors.Is(err, ErrForbidden):
		return "", errForbidden
	case err != nil:
		s.cfg.Logger.Warn("files: message check failed", "err", err)
		return "", errUnavailable
	}
	if m.ContentType != protocol.ContentAttachment {
		return "", errForbidden
	}
	a, err := protocol.DecodeAttachment(m.Body)
	if err != nil || !bytes.Equal(a.SHA256, sum[:]) {
		return "", errForbidden
	}
	ok, err := s.cfg.Store.IsOwner(ctx, sum, m.From)
	switch {
	case err != nil:
		return "", errUnavailable
	case !ok:
		return "", errForbidden
	}
	return a.Name, nil
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
