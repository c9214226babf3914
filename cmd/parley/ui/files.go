package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/protocol"
)

// Files sends and saves attachments: an ability of the backend found by
// type assertion (*client.Client has it); without it /send-file and /save
// say so.
type Files interface {
	// UploadFile uploads the file at path to the server's file endpoint
	// and returns the attachment to send.
	UploadFile(ctx context.Context, path string) (protocol.Attachment, error)
	// Download writes the file of attachment message m to w, checking its
	// size and SHA-256.
	Download(ctx context.Context, m protocol.Message, w io.Writer) (protocol.Attachment, int64, error)
}

// MessageText is how a message reads on the screen: its text, or for an
// attachment one line with its number for /save, name, size and type.
func MessageText(x protocol.Message) string {
	if x.ContentType == protocol.ContentTimer {
		return "⏱ " + timerWords(x)
	}
	if x.ContentType != protocol.ContentAttachment {
		return string(x.Body)
	}
	a, err := protocol.DecodeAttachment(x.Body)
	if err != nil {
		return "📎 (an attachment this client cannot read)"
	}
	dims := ""
	if a.Width > 0 && a.Height > 0 {
		dims = fmt.Sprintf(", %d×%d", a.Width, a.Height)
	}
	return fmt.Sprintf("📎 %s — %s, %s%s  (/save %d)", a.Name, byteSize(a.Size), a.MIME, dims, x.Seq)
}

// byteSize says n bytes for people: 512 B, 47.1 KiB, 3.0 MiB.
func byteSize(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

// sendFile uploads path and sends it to the conversation shown.
func (m *Model) sendFile(path string) tea.Cmd {
	f, ok := m.b.(Files)
	if !ok {
		m.fail("this client cannot send files")
		return nil
	}
	c := m.conv(m.current)
	if c == nil {
		m.fail("open a conversation first (/msg NAME or Tab)")
		return nil
	}
	if strings.HasPrefix(path, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, path[2:])
		}
	}
	to, group := c.peer, c.group
	b, me := m.b, m.me
	m.say("uploading " + filepath.Base(path) + "…")
	return m.call(func(ctx context.Context) tea.Msg {
		a, err := f.UploadFile(ctx, path)
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is on the screen already
		}
		if err != nil {
			return doneMsg{err: fmt.Errorf("send-file %s: %w", filepath.Base(path), err)}
		}
		body, err := protocol.EncodeAttachment(&a)
		if err != nil {
			return doneMsg{err: err}
		}
		s := protocol.Send{ClientMsgID: b.NewClientMsgID(), ContentType: protocol.ContentAttachment, Body: body}
		if group != 0 {
			s.GroupID = group
		} else {
			s.To = to
		}
		ack, err := b.SendRaw(ctx, s)
		if err != nil {
			return doneMsg{err: fmt.Errorf("send-file %s: %w", a.Name, err)}
		}
		return fileSentMsg{
			m: protocol.Message{
				MsgID: ack.MsgID, Conv: ack.Conv, Seq: ack.Seq, From: me, To: s.To, GroupID: s.GroupID,
				ClientMsgID: s.ClientMsgID, ContentType: s.ContentType, Body: body, ServerTime: ack.ServerTime,
			},
			text: fmt.Sprintf("sent %s (%s, %s)", a.Name, byteSize(a.Size), a.MIME),
		}
	})
}

// fileSentMsg is an attachment stored by the server: it joins its
// conversation as the sender's own messages do.
type fileSentMsg struct {
	m    protocol.Message
	text string
}

func (m *Model) fileSent(f fileSentMsg) tea.Cmd {
	if c := m.conv(f.m.Conv); c != nil {
		m.add(c, f.m)
	}
	m.say(f.text)
	return nil
}

// save downloads the attachment of message seq of the conversation shown
// into dir, under its name made safe, never over an existing file.
func (m *Model) save(seq int64, dir string) tea.Cmd {
	f, ok := m.b.(Files)
	if !ok {
		m.fail("this client cannot save files")
		return nil
	}
	c := m.conv(m.current)
	if c == nil {
		m.fail("open a conversation first")
		return nil
	}
	var msg *protocol.Message
	for i := range c.msgs {
		if c.msgs[i].Seq == uint64(seq) {
			msg = &c.msgs[i]
		}
	}
	if msg == nil || msg.ContentType != protocol.ContentAttachment {
		m.fail(fmt.Sprintf("message %d here is not an attachment: the number is the one after /save on its line", seq))
		return nil
	}
	x := *msg
	return m.call(func(ctx context.Context) tea.Msg {
		path, n, err := saveAttachment(ctx, f, x, dir)
		if err != nil {
			return doneMsg{err: fmt.Errorf("save: %w", err)}
		}
		return doneMsg{text: fmt.Sprintf("saved %s (%s)", path, byteSize(n))}
	})
}

// saveAttachment downloads x into dir. The name comes from another user:
// only its last element is used, and a name taken already gets " (2)",
// " (3)", ... before its extension.
func saveAttachment(ctx context.Context, f Files, x protocol.Message, dir string) (string, int64, error) {
	a, err := protocol.DecodeAttachment(x.Body)
	if err != nil {
		return "", 0, err
	}
	name := filepath.Base(filepath.Clean("/" + a.Name))
	if name == "/" || name == "." || name == ".." || strings.HasPrefix(name, ".") {
		name = "attachment" + name
	}
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	var out *os.File
	var path string
	for i := 1; out == nil; i++ {
		path = filepath.Join(dir, name)
		if i > 1 {
			path = filepath.Join(dir, fmt.Sprintf("%s (%d)%s", stem, i, ext))
		}
		out, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil && !errors.Is(err, os.ErrExist) || i > 1000 {
			return "", 0, err
		}
	}
	_, n, err := f.Download(ctx, x, out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", 0, err
	}
	return path, n, nil
}
