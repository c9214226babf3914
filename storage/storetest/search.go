package storetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/fulltext"
)

var searchCases = []struct {
	name string
	fn   func(t *testing.T, open Open)
}{
	{"SearchText", testSearchText},
	{"SearchAttachmentName", testSearchAttachmentName},
	{"SearchPaging", testSearchPaging},
	{"SearchMembership", testSearchMembership},
	{"SearchHidden", testSearchHidden},
	{"SearchUnindex", testSearchUnindex},
	{"SearchEdited", testSearchEdited},
	{"FileRefs", testFileRefs},
	{"SearchBudget", testSearchBudget},
}

// searcher returns the env's store as a storage.Searcher.
func (e *env) searcher() storage.Searcher {
	e.t.Helper()
	s, ok := e.s.(storage.Searcher)
	if !ok {
		e.t.Fatalf("%T does not implement storage.Searcher", e.s)
	}
	return s
}

// text builds a text message (content type 0) from one user to another.
func (e *env) text(from, to int64, body string) protocol.Message {
	e.t.Helper()
	m := e.direct(from, to, fmt.Sprintf("t-%d", e.msgID.Load()), []byte(body))
	m.ContentType = 0
	return e.add(m)
}

func (e *env) groupText(from, group int64, body string) protocol.Message {
	e.t.Helper()
	m := e.group(from, group, fmt.Sprintf("g-%d", e.msgID.Load()), []byte(body))
	m.ContentType = 0
	return e.add(m)
}

// search flushes the index and returns the bodies of one page.
func (e *env) search(q fulltext.Query) (fulltext.Page, []string) {
	e.t.Helper()
	s := e.searcher()
	if err := s.IndexFlush(e.ctx); err != nil {
		e.t.Fatalf("IndexFlush: %v", err)
	}
	if q.Limit == 0 {
		q.Limit = 50
	}
	p, err := s.Search(e.ctx, q)
	if err != nil {
		e.t.Fatalf("Search(%q): %v", q.Text, err)
	}
	var bodies []string
	for _, m := range p.Messages {
		bodies = append(bodies, string(m.Body))
	}
	return p, bodies
}

func wantBodies(t *testing.T, query string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("search %q: got %q, want %q", query, got, want)
	}
}

// An attachment (content type 1) is found by its file name, not by the
// bytes of its msgpack body.
func testSearchAttachmentName(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	u := e.users(2)
	a, b := u[0], u[1]
	att := protocol.Attachment{Name: "東京 trip-map.png", MIME: "image/png", Size: 10, SHA256: make([]byte, 32)}
	att.URL = protocol.FilePath(att.SHA256)
	body, err := protocol.EncodeAttachment(&att)
	if err != nil {
		t.Fatal(err)
	}
	m := e.direct(a, b, "att-1", body)
	m.ContentType = protocol.ContentAttachment
	e.add(m)
	e.text(b, a, "see you at the station")
	for _, q := range []string{"trip-map", "東京", "PNG"} {
		p, _ := e.search(fulltext.Query{User: a, Text: q})
		if len(p.Messages) != 1 || p.Messages[0].ContentType != protocol.ContentAttachment {
			t.Errorf("search %q: %d messages, want the attachment", q, len(p.Messages))
		}
	}
	for _, q := range []string{"image", "sha256", "mime"} { // keys and values of the body, not its name
		if p, _ := e.search(fulltext.Query{User: a, Text: q}); len(p.Messages) != 0 {
			t.Errorf("search %q found %d messages in an attachment's body", q, len(p.Messages))
		}
	}
}

// Text: Latin case-insensitively and inside words, Chinese and Japanese by
// bigrams, one-rune queries, every term required, newest first; other
// content types are not text.
func testSearchText(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	u := e.users(3)
	a, b, c := u[0], u[1], u[2]
	e.text(a, b, "Hello World, meet me at the station")
	e.text(b, a, "我们明天在东京见面")
	e.text(a, b, "東京駅で会いましょう")
	e.text(a, c, "the station is closed")
	e.text(b, a, "ＡＢＣ full-width letters")
	other := e.direct(a, b, "bin-1", []byte("station in a binary body"))
	other.ContentType = 7
	e.add(other)

	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"station", []string{"the station is closed", "Hello World, meet me at the station"}},
		{"STATION closed", []string{"the station is closed"}},
		{"world hello", []string{"Hello World, meet me at the station"}},
		{"orl", []string{"Hello World, meet me at the station"}},
		{"东京", []string{"我们明天在东京见面"}},
		{"東京", []string{"東京駅で会いましょう"}},
		{"京", []string{"東京駅で会いましょう", "我们明天在东京见面"}},
		{"会いましょう", []string{"東京駅で会いましょう"}},
		{"abc", []string{"ＡＢＣ full-width letters"}},
		{"stations", nil},
		{"station nowhere", nil},
	} {
		_, got := e.search(fulltext.Query{User: a, Text: tc.q})
		wantBodies(t, tc.q, got, tc.want...)
	}
	// c sees only its own conversation.
	_, got := e.search(fulltext.Query{User: c, Text: "station"})
	wantBodies(t, "station as c", got, "the station is closed")
	// One conversation only.
	_, got = e.search(fulltext.Query{User: a, Text: "station", Conv: protocol.DirectConv(a, b)})
	wantBodies(t, "station in a-b", got, "Hello World, meet me at the station")

	if _, err := e.searcher().Search(e.ctx, fulltext.Query{User: a, Text: " ,.!? ", Limit: 5}); !errors.Is(err, fulltext.ErrEmptyQuery) {
		t.Errorf("Search of punctuation: %v, want ErrEmptyQuery", err)
	}
}

// Paging: pages of 3 through matches spread over several conversations give
// every match once, newest first.
func testSearchPaging(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	u := e.users(4)
	var want []string
	for i := range 20 {
		to := u[1+i%3]
		body := fmt.Sprintf("apple pie number %d", i)
		if i%4 == 3 {
			body = fmt.Sprintf("banana number %d", i)
		} else {
			want = append(want, body)
		}
		if i%2 == 0 {
			e.text(u[0], to, body)
		} else {
			e.text(to, u[0], body)
		}
	}
	slices.Reverse(want)
	var got []string
	q := fulltext.Query{User: u[0], Text: "apple", Limit: 3}
	for range 20 {
		p, bodies := e.search(q)
		got = append(got, bodies...)
		if !p.More {
			break
		}
		if len(p.Messages) == 0 {
			t.Fatal("a page with more but no messages")
		}
		q.Before = p.Next
	}
	wantBodies(t, "apple (paged)", got, want...)
}

// Membership: a group member finds the messages sent after it joined and
// none once it left; no one finds a conversation it is not in.
func testSearchMembership(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	u := e.users(4)
	owner, early, late, outsider := u[0], u[1], u[2], u[3]
	g := e.createGroup(owner, []int64{early}, 10)
	e.groupText(owner, g.ID, "secret plan one")
	if _, err := e.s.AddMembers(e.ctx, g.ID, []int64{late}, 10, e.now()); err != nil {
		t.Fatal(err)
	}
	e.groupText(early, g.ID, "secret plan two")
	e.text(owner, early, "secret between two")

	_, got := e.search(fulltext.Query{User: early, Text: "secret"})
	wantBodies(t, "secret as early", got, "secret between two", "secret plan two", "secret plan one")
	_, got = e.search(fulltext.Query{User: late, Text: "secret"})
	wantBodies(t, "secret as late", got, "secret plan two")
	_, got = e.search(fulltext.Query{User: outsider, Text: "secret"})
	wantBodies(t, "secret as outsider", got)

	if err := e.s.RemoveMember(e.ctx, g.ID, late); err != nil {
		t.Fatal(err)
	}
	_, got = e.search(fulltext.Query{User: late, Text: "secret"})
	wantBodies(t, "secret as late, after leaving", got)
	// A conversation named that the user is not in finds nothing either.
	_, got = e.search(fulltext.Query{User: outsider, Text: "secret", Conv: protocol.GroupConv(g.ID)})
	wantBodies(t, "secret as outsider in the group", got)
}

// Hidden: what a user deleted for itself (one message, or up to a seq) is
// not found by it, and still by the other user.
func testSearchHidden(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	u := e.users(2)
	a, b := u[0], u[1]
	conv := protocol.DirectConv(a, b)
	m1 := e.text(a, b, "report one")
	m2 := e.text(a, b, "report two")
	e.text(b, a, "report three")
	e.hide(a, conv, []uint64{m2.Seq}, 0)
	_, got := e.search(fulltext.Query{User: a, Text: "report"})
	wantBodies(t, "report as a", got, "report three", "report one")
	e.hide(a, conv, nil, m1.Seq)
	_, got = e.search(fulltext.Query{User: a, Text: "report"})
	wantBodies(t, "report as a, cleared", got, "report three")
	_, got = e.search(fulltext.Query{User: b, Text: "report"})
	wantBodies(t, "report as b", got, "report three", "report two", "report one")
}

// Unindex: a message taken out of the index is not found, though still
// stored; the others are.
func testSearchUnindex(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	u := e.users(2)
	a, b := u[0], u[1]
	m1 := e.text(a, b, "recall this message")
	e.text(a, b, "keep this message")
	if err := e.searcher().IndexFlush(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.searcher().Unindex(e.ctx, []protocol.Message{m1}); err != nil {
		t.Fatalf("Unindex: %v", err)
	}
	_, got := e.search(fulltext.Query{User: b, Text: "message"})
	wantBodies(t, "message", got, "keep this message")
	_, got = e.search(fulltext.Query{User: b, Text: "recall"})
	wantBodies(t, "recall", got)
}

// Edited: a message is found by its latest text, shown with it, and not by
// words only its earlier versions had (the edit history is not searched);
// an edit indexed with its target (one pass) or after it (a later pass)
// alike. A recalled message is found by none of its versions.
func testSearchEdited(t *testing.T, open Open) {
	e := newEventEnv(t, open, nil)
	u := e.users(2)
	a, b := u[0], u[1]
	m1 := e.text(a, b, "alpha plan draft")
	e.text(b, a, "unrelated draft")
	if err := e.searcher().IndexFlush(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.add(e.event(a, b, protocol.ContentEdit, m1.Seq, "beta plan final"))
	// m2 and its edit are indexed in one pass.
	m2 := e.text(a, b, "東京 meeting")
	e.add(e.event(a, b, protocol.ContentEdit, m2.Seq, "大阪 meeting"))
	for _, user := range []int64{a, b} {
		p, got := e.search(fulltext.Query{User: user, Text: "plan"})
		wantBodies(t, "plan", got, "beta plan final")
		if len(p.Messages) == 1 && (p.Messages[0].Seq != m1.Seq || p.Messages[0].Edited != 1) {
			t.Errorf("plan: seq %d edited %d, want seq %d edited 1", p.Messages[0].Seq, p.Messages[0].Edited, m1.Seq)
		}
	}
	_, got := e.search(fulltext.Query{User: a, Text: "beta"})
	wantBodies(t, "beta", got, "beta plan final")
	_, got = e.search(fulltext.Query{User: a, Text: "alpha"})
	wantBodies(t, "alpha (edited out)", got)
	_, got = e.search(fulltext.Query{User: a, Text: "draft"})
	wantBodies(t, "draft", got, "unrelated draft")
	_, got = e.search(fulltext.Query{User: b, Text: "大阪"})
	wantBodies(t, "大阪", got, "大阪 meeting")
	_, got = e.search(fulltext.Query{User: b, Text: "東京"})
	wantBodies(t, "東京 (edited out)", got)
	// A second edit puts a word of the first version back.
	e.add(e.event(a, b, protocol.ContentEdit, m1.Seq, "alpha again"))
	_, got = e.search(fulltext.Query{User: a, Text: "alpha"})
	wantBodies(t, "alpha (edited back)", got, "alpha again")
	_, got = e.search(fulltext.Query{User: a, Text: "beta"})
	wantBodies(t, "beta (edited out)", got)
	e.add(e.event(a, b, protocol.ContentRecall, m1.Seq, ""))
	_, got = e.search(fulltext.Query{User: a, Text: "alpha"})
	wantBodies(t, "alpha (recalled)", got)
}

// FileRefs: every indexed attachment is listed under its file, and an
// attachment edited to another file under both (the collector of files
// checks each against the store).
func testFileRefs(t *testing.T, open Open) {
	e := newEventEnv(t, open, nil)
	fr, ok := e.s.(storage.FileRefs)
	if !ok {
		t.Fatalf("%T does not implement storage.FileRefs", e.s)
	}
	u := e.users(3)
	a, b, c := u[0], u[1], u[2]
	attach := func(from, to int64, content string) (protocol.Message, [32]byte, []byte) {
		sum := sha256.Sum256([]byte(content))
		att := protocol.Attachment{Name: content + ".txt", MIME: "text/plain", Size: int64(len(content)), SHA256: sum[:]}
		att.URL = protocol.FilePath(att.SHA256)
		body, err := protocol.EncodeAttachment(&att)
		if err != nil {
			t.Fatal(err)
		}
		m := e.direct(from, to, fmt.Sprintf("f-%d", e.msgID.Load()), body)
		m.ContentType = protocol.ContentAttachment
		return e.add(m), sum, body
	}
	m1, s1, _ := attach(a, b, "one")
	m2, _, _ := attach(b, a, "one")
	m3, s2, _ := attach(a, c, "two")
	e.text(a, b, "no file")
	_, s3, body3 := attach(c, a, "three")
	edit := e.event(a, c, protocol.ContentEdit, m3.Seq, "")
	edit.Body = body3 // "two" becomes "three"
	e.add(edit)
	if err := e.searcher().IndexFlush(e.ctx); err != nil {
		t.Fatal(err)
	}
	never := sha256.Sum256([]byte("never sent"))
	got, err := fr.FileRefs(e.ctx, [][32]byte{s1, s2, s3, never})
	if err != nil {
		t.Fatalf("FileRefs: %v", err)
	}
	sorted := func(refs []storage.MessageRef) []storage.MessageRef {
		slices.SortFunc(refs, func(x, y storage.MessageRef) int {
			if x.Conv != y.Conv {
				return strings.Compare(x.Conv, y.Conv)
			}
			return int(x.Seq) - int(y.Seq)
		})
		return refs
	}
	want1 := sorted([]storage.MessageRef{{Conv: m1.Conv, Seq: m1.Seq}, {Conv: m2.Conv, Seq: m2.Seq}})
	if g := sorted(got[s1]); !slices.Equal(g, want1) {
		t.Errorf("file one: %v, want %v", g, want1)
	}
	if g := got[s2]; !slices.Equal(g, []storage.MessageRef{{Conv: m3.Conv, Seq: m3.Seq}}) {
		t.Errorf("file two: %v, want the message edited away from it", g)
	}
	if g := got[s3]; !slices.Contains(g, storage.MessageRef{Conv: m3.Conv, Seq: m3.Seq}) || len(g) != 2 {
		t.Errorf("file three: %v, want its message and the one edited to it", g)
	}
	if g := got[never]; len(g) != 0 {
		t.Errorf("a file never sent: %v", g)
	}
}

// Budget: a search that reads MaxReads without a result fails ErrTooBroad;
// one that found some returns them with More.
func testSearchBudget(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	u := e.users(2)
	a, b := u[0], u[1]
	for i := range 100 {
		e.text(a, b, fmt.Sprintf("common word %d", i))
	}
	e.text(a, b, "common")
	s := e.searcher()
	if err := s.IndexFlush(e.ctx); err != nil {
		t.Fatal(err)
	}
	// "common" finds 101 candidates; with 40 reads and a page of 50 it
	// stops early with what it found.
	p, err := s.Search(e.ctx, fulltext.Query{User: a, Text: "common", Limit: 50, MaxReads: 40})
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if !p.More || len(p.Messages) == 0 || len(p.Messages) >= 50 {
		t.Errorf("budgeted search: %d results, more %v; want some, with more", len(p.Messages), p.More)
	}
	// "d" (the end of "word") has 100 candidates, none read within 1 read (the list).
	start := time.Now()
	p, err = s.Search(e.ctx, fulltext.Query{User: a, Text: "d", Limit: 5, MaxReads: 1})
	if !errors.Is(err, fulltext.ErrTooBroad) {
		t.Errorf("Search with 1 read: %d results, %v; want ErrTooBroad", len(p.Messages), err)
	}
	t.Logf("budgeted search took %v", time.Since(start))
}
