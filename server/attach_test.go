package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/storage/blob"
)

// startFiles starts a server with a file endpoint on a local directory.
func startFiles(t *testing.T, mut func(*server.Config)) *server.Server {
	t.Helper()
	d, err := blob.OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, func(c *server.Config) {
		c.FilesAddr, c.Blobs = "127.0.0.1:0", d
		if mut != nil {
			mut(c)
		}
	})
}

// refusal is an error answer of the file endpoint.
type refusal struct {
	status int
	Code   string `json:"code"`
	Msg    string `json:"message"`
}

func upload(t *testing.T, srv *server.Server, token, name string, body []byte) (refusal, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", srv.FilesURL()+"/v1/files?name="+url.QueryEscape(name), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) (refusal, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	r := refusal{status: resp.StatusCode}
	if resp.StatusCode/100 == 2 {
		var ok map[string]any
		_ = json.Unmarshal(data, &ok)
		return r, ok
	}
	if err := json.Unmarshal(data, &r); err != nil || r.Code == "" || r.Msg == "" {
		t.Fatalf("status %d: body %q is not a clear error (%v)", resp.StatusCode, data, err)
	}
	return r, nil
}

func wantRefusal(t *testing.T, what string, got refusal, status int, code string) {
	t.Helper()
	if got.status != status || got.Code != code {
		t.Errorf("%s: %d %s (%s), want %d %s", what, got.status, got.Code, got.Msg, status, code)
	}
}

// rawHTTP writes a request by hand and returns the status line and body.
func rawHTTP(t *testing.T, addr, req string, after func(net.Conn)) (string, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	if after != nil {
		after(c)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.Status, string(body)
}

// readHead reads one response head (through its blank line) from c, byte
// by byte so that nothing after it is consumed.
func readHead(c net.Conn) string {
	var head []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if _, err := c.Read(b); err != nil {
			return string(head) + " (" + err.Error() + ")"
		}
		head = append(head, b[0])
	}
	return string(head)
}

func TestFilesRefusals(t *testing.T) {
	srv := startFiles(t, func(c *server.Config) {
		c.Files.MaxSize = 64 << 10
		// Long enough for a second upload to meet the slow one below on
		// a loaded machine.
		c.Files.IdleTimeout = time.Second
		c.Files.MaxUploadsPerUser = 1
	})
	alice := dial(t, srv.Addr())
	ok := alice.register(uniqueName("alice"))
	if ok.FilesURL == "" || ok.FilesURL != srv.FilesURL() {
		t.Fatalf("LoginOK files_url %q, server %q", ok.FilesURL, srv.FilesURL())
	}
	tok := ok.Token

	// Tokens: none, wrong, revoked.
	r, _ := upload(t, srv, "", "a.txt", []byte("x"))
	wantRefusal(t, "no token", r, 401, "TOKEN_INVALID")
	r, _ = upload(t, srv, "not-a-token", "a.txt", []byte("x"))
	wantRefusal(t, "wrong token", r, 401, "TOKEN_INVALID")

	// Names.
	for _, name := range []string{"", ".", "..", "../../etc/passwd", "a/b", `a\b`, "nul\x00byte", "line\nbreak", " lead", "trail ",
		strings.Repeat("n", protocol.MaxFileName+1), "bad\xffutf8"} {
		r, _ := upload(t, srv, tok, name, []byte("x"))
		wantRefusal(t, fmt.Sprintf("name %q", name), r, 400, "BAD_NAME")
	}
	// Good names, CJK and spaces inside included, are taken.
	for _, name := range []string{"報告 2026.pdf", "a", "..hidden", "x.tar.gz"} {
		if r, ok := upload(t, srv, tok, name, []byte("content of "+name)); r.status != 201 || ok["name"] != name {
			t.Errorf("name %q: %d %s", name, r.status, r.Code)
		}
	}

	// Size: above the limit, refused before the body is read.
	r, _ = upload(t, srv, tok, "big.bin", make([]byte, 64<<10+1))
	wantRefusal(t, "oversize", r, 413, "FILE_TOO_LARGE")
	if r, _ := upload(t, srv, tok, "max.bin", make([]byte, 64<<10)); r.status != 201 {
		t.Errorf("a file of exactly the limit: %d %s", r.status, r.Code)
	}

	addr := strings.TrimPrefix(srv.FilesURL(), "http://")
	auth := "Authorization: Bearer " + tok + "\r\n"
	// No Content-Length.
	status, body := rawHTTP(t, addr, "POST /v1/files?name=c.txt HTTP/1.1\r\nHost: x\r\n"+auth+"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", nil)
	if !strings.HasPrefix(status, "411") || !strings.Contains(body, "LENGTH_REQUIRED") {
		t.Errorf("chunked upload: %s %s", status, body)
	}
	// A body shorter than its Content-Length.
	status, body = rawHTTP(t, addr, "POST /v1/files?name=s.txt HTTP/1.1\r\nHost: x\r\n"+auth+"Content-Length: 100\r\n\r\nonly ten b", func(c net.Conn) {
		_ = c.(*net.TCPConn).CloseWrite()
	})
	if !strings.HasPrefix(status, "400") || !strings.Contains(body, "INCOMPLETE") {
		t.Errorf("short body: %s %s", status, body)
	}
	// A slow upload is cut after the idle timeout, and while it runs the
	// user's one upload slot is taken. It asks for 100 Continue, which the
	// server sends once it has admitted the upload and reads its body.
	slow, admitted := make(chan string, 1), make(chan struct{})
	go func() {
		st, b := rawHTTP(t, addr, "POST /v1/files?name=slow.txt HTTP/1.1\r\nHost: x\r\n"+auth+"Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n", func(c net.Conn) {
			if head := readHead(c); !strings.HasPrefix(head, "HTTP/1.1 100 ") {
				t.Errorf("slow upload: %q before its body, want 100 Continue", head)
			}
			close(admitted)
			_, _ = io.WriteString(c, "ten bytes.")
		})
		slow <- st + " " + b
	}()
	select {
	case <-admitted:
	case got := <-slow:
		t.Fatalf("slow upload: %s before 100 Continue", got)
	}
	r, _ = upload(t, srv, tok, "second.txt", []byte("x"))
	wantRefusal(t, "a second upload at once", r, 429, "TOO_MANY_UPLOADS")
	if got := <-slow; !strings.HasPrefix(got, "408") || !strings.Contains(got, "UPLOAD_TIMEOUT") {
		t.Errorf("slow upload: %s", got)
	}
	if r, _ := upload(t, srv, tok, "after.txt", []byte("x")); r.status != 201 {
		t.Errorf("upload after the slow one ended: %d %s", r.status, r.Code)
	}

	// Downloads: file ids that are not 64 lowercase hex digits, and
	// path traversal, name nothing.
	get := func(path string) refusal {
		req, _ := http.NewRequest("GET", srv.FilesURL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		r, _ := do(t, req)
		return r
	}
	for _, p := range []string{"/v1/files/..%2F..%2Fetc%2Fpasswd", "/v1/files/" + strings.Repeat("A", 64), "/v1/files/abc",
		"/v1/files/" + strings.Repeat("0", 63) + "g"} {
		wantRefusal(t, "GET "+p, get(p), 400, "BAD_FILE_ID")
	}
	for _, p := range []string{"/v1/files/../../../etc/passwd", "/v1/files/%2e%2e/%2e%2e/etc/passwd"} {
		status, body := rawHTTP(t, addr, "GET "+p+" HTTP/1.1\r\nHost: x\r\n"+auth+"Connection: close\r\n\r\n", nil)
		if strings.HasPrefix(status, "200") || strings.Contains(body, "root:") {
			t.Errorf("GET %s: %s %q", p, status, body)
		}
	}
	// A file nobody uploaded, and one of another user: forbidden alike, so
	// the answer does not tell whether it exists.
	_, up := upload(t, srv, tok, "mine.txt", []byte("alice's file"))
	wantRefusal(t, "a file nobody uploaded", get("/v1/files/"+strings.Repeat("0", 64)), 403, "FORBIDDEN")
	bob := dial(t, srv.Addr())
	bobTok := bob.register(uniqueName("bob")).Token
	req, _ := http.NewRequest("GET", srv.FilesURL()+up["url"].(string), nil)
	req.Header.Set("Authorization", "Bearer "+bobTok)
	r, _ = do(t, req)
	wantRefusal(t, "bob asks for alice's file without a message", r, 403, "FORBIDDEN")
	req, _ = http.NewRequest("GET", srv.FilesURL()+up["url"].(string)+"?conv=d:1:2", nil)
	req.Header.Set("Authorization", "Bearer "+bobTok)
	r, _ = do(t, req)
	wantRefusal(t, "conv without seq", r, 400, "BAD_REQUEST")
	// The uploader may.
	req, _ = http.NewRequest("GET", srv.FilesURL()+up["url"].(string), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "alice's file" || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Errorf("uploader's download: %d %q %v", resp.StatusCode, got, resp.Header)
	}

	// Logout revokes the token for the file endpoint too.
	id := alice.send(protocol.TypeLogout, nil)
	alice.expect(protocol.TypeOK, id, nil)
	r, _ = upload(t, srv, tok, "late.txt", []byte("x"))
	wantRefusal(t, "revoked token", r, 401, "TOKEN_INVALID")
}

func TestFilesExpiredToken(t *testing.T) {
	srv := startFiles(t, func(c *server.Config) { c.TokenTTL = time.Second })
	tok := dial(t, srv.Addr()).register(uniqueName("eve")).Token
	if r, _ := upload(t, srv, tok, "a.txt", []byte("x")); r.status != 201 {
		t.Fatalf("upload with a fresh token: %d %s", r.status, r.Code)
	}
	time.Sleep(1100 * time.Millisecond)
	r, _ := upload(t, srv, tok, "a.txt", []byte("x"))
	wantRefusal(t, "expired token", r, 401, "TOKEN_INVALID")
}

func TestFilesSendRefusesBadAttachment(t *testing.T) {
	srv := startFiles(t, nil)
	a := dial(t, srv.Addr())
	a.register(uniqueName("ann"))
	b := dial(t, srv.Addr())
	bID := b.register(uniqueName("ben")).UserID
	good := protocol.Attachment{Name: "x.txt", MIME: "text/plain; charset=utf-8", Size: 1, SHA256: make([]byte, 32)}
	good.URL = protocol.FilePath(good.SHA256)
	for what, mut := range map[string]func(*protocol.Attachment){
		"a name with a slash": func(x *protocol.Attachment) { x.Name = "../x" },
		"a short hash":        func(x *protocol.Attachment) { x.SHA256 = x.SHA256[:31] },
		"another url":         func(x *protocol.Attachment) { x.URL = "http://elsewhere/x" },
		"a negative size":     func(x *protocol.Attachment) { x.Size = -1 },
		"no mime":             func(x *protocol.Attachment) { x.MIME = "" },
	} {
		bad := good
		bad.SHA256 = append([]byte(nil), good.SHA256...)
		mut(&bad)
		body, err := protocol.EncodeAttachment(&bad)
		if err != nil {
			t.Fatal(err)
		}
		id := a.send(protocol.TypeSend, &protocol.Send{ClientMsgID: "c-" + what, To: bID, ContentType: protocol.ContentAttachment, Body: body})
		if e := a.expectError(id, protocol.CodeBadAttachment); e.Message == "" {
			t.Errorf("%s: no message", what)
		}
	}
	id := a.send(protocol.TypeSend, &protocol.Send{ClientMsgID: "c-text", To: bID, ContentType: protocol.ContentAttachment, Body: []byte("hello")})
	a.expectError(id, protocol.CodeBadAttachment)
	body, _ := protocol.EncodeAttachment(&good)
	id = a.send(protocol.TypeSend, &protocol.Send{ClientMsgID: "c-good", To: bID, ContentType: protocol.ContentAttachment, Body: body})
	a.expect(protocol.TypeSendAck, id, &protocol.SendAck{})
}
