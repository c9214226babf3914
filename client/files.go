package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/parleyim/parley/protocol"
)

// Attachments: files go to the server's HTTP file endpoint (its URL comes
// in LoginOK), the message carries a protocol.Attachment. docs/protocol.md,
// "Attachments", is the contract.

// ErrNoFileEndpoint is returned when the server announced no file endpoint.
var ErrNoFileEndpoint = errors.New("client: the server has no file endpoint")

// FileError is an error answer of the file endpoint.
type FileError struct {
	Status  int    // HTTP status
	Code    string // TOKEN_INVALID, FILE_TOO_LARGE, BAD_NAME, FORBIDDEN, ...
	Message string
}

func (e *FileError) Error() string {
	return fmt.Sprintf("parley files: %d %s: %s", e.Status, e.Code, e.Message)
}

// FilesURL is the file endpoint's base URL from the last LoginOK ("" if the
// server has none).
func (c *Client) FilesURL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.filesURL
}

func (c *Client) fileRequest(ctx context.Context, method, path string, q url.Values, body io.Reader, size int64) (*http.Response, error) {
	c.mu.Lock()
	base, token := c.filesURL, c.token
	c.mu.Unlock()
	if base == "" {
		return nil, ErrNoFileEndpoint
	}
	u := strings.TrimSuffix(base, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		fe := &FileError{Status: resp.StatusCode}
		var e struct{ Code, Message string }
		if json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e) == nil {
			fe.Code, fe.Message = e.Code, e.Message
		}
		return nil, fe
	}
	return resp, nil
}

// Upload sends size bytes of r as a file named name and returns the
// attachment to send (SendAttachment). The server sniffs the type and reads
// an image's dimensions; a file it holds already is stored once.
func (c *Client) Upload(ctx context.Context, name string, r io.Reader, size int64) (protocol.Attachment, error) {
	if !protocol.ValidFileName(name) {
		return protocol.Attachment{}, fmt.Errorf("%w: %q", protocol.ErrBadAttachment, name)
	}
	resp, err := c.fileRequest(ctx, http.MethodPost, "/v1/files", url.Values{"name": {name}}, r, size)
	if err != nil {
		return protocol.Attachment{}, err
	}
	defer resp.Body.Close()
	var up struct {
		Name, MIME, SHA256, URL string
		Size                    int64
		Width, Height           uint32
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&up); err != nil {
		return protocol.Attachment{}, fmt.Errorf("client: upload answer: %w", err)
	}
	sum, err := hex.DecodeString(up.SHA256)
	if err != nil {
		return protocol.Attachment{}, fmt.Errorf("client: upload answer: sha256: %w", err)
	}
	a := protocol.Attachment{Name: up.Name, MIME: up.MIME, Size: up.Size, SHA256: sum, Width: up.Width, Height: up.Height, URL: up.URL}
	return a, a.Check()
}

// UploadFile uploads the file at path under its base name.
func (c *Client) UploadFile(ctx context.Context, path string) (protocol.Attachment, error) {
	f, err := os.Open(path)
	if err != nil {
		return protocol.Attachment{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return protocol.Attachment{}, err
	}
	if !st.Mode().IsRegular() {
		return protocol.Attachment{}, fmt.Errorf("client: %s is not a regular file", path)
	}
	return c.Upload(ctx, filepath.Base(path), f, st.Size())
}

// SendAttachment sends a to user to (group 0) or to group.
func (c *Client) SendAttachment(ctx context.Context, to, group int64, a protocol.Attachment) (protocol.SendAck, error) {
	body, err := protocol.EncodeAttachment(&a)
	if err != nil {
		return protocol.SendAck{}, err
	}
	if group != 0 {
		return c.SendGroup(ctx, group, protocol.ContentAttachment, body)
	}
	return c.Send(ctx, to, protocol.ContentAttachment, body)
}

// Download writes the file of attachment message m to w: the server lets
// anyone who may read m have it. It returns the attachment and the bytes
// written.
func (c *Client) Download(ctx context.Context, m protocol.Message, w io.Writer) (protocol.Attachment, int64, error) {
	if m.ContentType != protocol.ContentAttachment {
		return protocol.Attachment{}, 0, fmt.Errorf("%w: message %s/%d is not an attachment", protocol.ErrBadAttachment, m.Conv, m.Seq)
	}
	a, err := protocol.DecodeAttachment(m.Body)
	if err != nil {
		return a, 0, err
	}
	q := url.Values{"conv": {m.Conv}, "seq": {strconv.FormatUint(m.Seq, 10)}}
	resp, err := c.fileRequest(ctx, http.MethodGet, a.URL, q, nil, 0)
	if err != nil {
		return a, 0, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), resp.Body)
	switch {
	case err != nil:
	case n != a.Size:
		err = fmt.Errorf("client: download of %s: %d bytes, the attachment says %d", a.Name, n, a.Size)
	case !bytes.Equal(h.Sum(nil), a.SHA256):
		err = fmt.Errorf("client: download of %s: the content does not match its SHA-256", a.Name)
	}
	return a, n, err
}
