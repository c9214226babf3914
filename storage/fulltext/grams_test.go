package fulltext

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parleyim/parley/protocol"
)

// refGrams is the gram cutter as it was before the cutter type (a map and
// a string per message): the reference the cutter must match exactly.
func refGrams(text string) []Gram {
	seen := make(map[Gram]struct{})
	var out []Gram
	add := func(g Gram) {
		if _, ok := seen[g]; !ok {
			seen[g] = struct{}{}
			out = append(out, g)
		}
	}
	for _, t := range Terms(text) {
		rs := []rune(t)
		for i := range rs {
			if i+1 < len(rs) {
				add(gramOf(rs[i], rs[i+1]))
			} else {
				add(gramOf(rs[i], 0))
			}
		}
	}
	return out
}

// gramCorpus is text of every kind the cutter meets, and its edges.
var gramCorpus = []string{
	"", " ", "a", "A", "ab", "Hello, World!", "the quick brown fox jumps over the lazy dog THE QUICK",
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababab abab ab a b",
	"café naïve Ünïcödé ÀÉÎÕÜ straße ΣΊΣΥΦΟΣ Привет МИР", "İstanbul ıi KELVIN \u212a \u0130",
	"e\u0301 a\u0308\u0308 \u0301lone combining", "東京-大阪 2026", "我们今天去北京吃烤鸭，好吗？",
	"日本語のテキストとカタカナ、ひらがな。", "한국어 텍스트 검색", "ＡＢＣ１２ ｈｅｌｌｏ！ＷＯＲＬＤ",
	"mixed 中文and English混合text123数字", "العربية ٠١٢٣ עברית", "हिन्दी पाठ", "ไทยภาษา",
	"emoji 😀😀 👍🏽 👨\u200d👩\u200d👧 🇯🇵 ❤️ done", "🙂", "a😀b", "x\u200dy\u200cz",
	"\x00\x00a\x00", " \x00\xff ", "\xff\xfe\xfd", "ab\xffcd", "trunc\xe4\xb8", "\xe4\xb8\xadok",
	"\uFFFD", "a\uFFFDb", "\xed\xa0\x80surrogate", "\xc0\xafover long", "tab\tnew\nline\r\n",
	"1234567890 0.5 1e10 -42 ¹²³ ½ Ⅻ ⅻ", "under_score hyphen-ated dot.ted @at #hash $dollar",
	"\u00a0nbsp\u2003em\u3000ideographic", strings.Repeat("長い文章の繰り返し", 200),
	strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 100),
}

func TestCutterMatchesReference(t *testing.T) {
	var c cutter // one cutter across every text: reuse must not leak
	check := func(text string) {
		t.Helper()
		want := refGrams(text)
		if got := c.grams([]byte(text)); !slices.Equal(got, want) {
			t.Fatalf("cutter(%q) = %x, want %x", text, got, want)
		}
		if got := Grams(text); !slices.Equal(got, want) {
			t.Fatalf("Grams(%q) = %x, want %x", text, got, want)
		}
	}
	for _, s := range gramCorpus {
		check(s)
	}
	// Random text: runes drawn from ASCII, Latin, CJK, emoji, marks,
	// separators and invalid bytes, at every length up to 300 bytes.
	pool := []rune("aZ09 ,.!\t\nßéÉİıΣσЖж東京大阪日本語カナ한글😀👍\u0301\u200d\uFFFDＡｚ１٣")
	rng := rand.New(rand.NewPCG(1, 2))
	var b []byte
	for range 20000 {
		b = b[:0]
		for n := rng.IntN(80); len(b) < 300 && n > 0; n-- {
			if rng.IntN(20) == 0 {
				b = append(b, byte(rng.IntN(256))) // maybe invalid UTF-8
				continue
			}
			b = utf8.AppendRune(b, pool[rng.IntN(len(pool))])
		}
		check(string(b))
	}
}

// The cutter takes each CJK Unified Ideograph as a word rune that folds to
// itself without asking the Unicode tables: check that they agree.
func TestHanRange(t *testing.T) {
	for r := rune(hanLo); r <= hanHi; r++ {
		if fold(r) != r || !isWord(r) {
			t.Fatalf("%U: fold %U, isWord %v", r, fold(r), isWord(r))
		}
	}
}

func FuzzCutter(f *testing.F) {
	for _, s := range gramCorpus {
		f.Add(s)
	}
	var c cutter
	f.Fuzz(func(t *testing.T, text string) {
		if got, want := c.grams([]byte(text)), refGrams(text); !slices.Equal(got, want) {
			t.Fatalf("cutter(%q) = %x, want %x", text, got, want)
		}
	})
}

// The hot path reads a text message's body in place.
func TestTextBytes(t *testing.T) {
	m := protocol.Message{ContentType: protocol.ContentText, Body: []byte("hi there")}
	if b := textBytes(&m); &b[0] != &m.Body[0] {
		t.Error("textBytes copied a text message's body")
	}
	sum := make([]byte, 32)
	a, err := protocol.EncodeAttachment(&protocol.Attachment{Name: "Report.pdf", MIME: "application/pdf", Size: 1, SHA256: sum, URL: protocol.FilePath(sum)})
	if err != nil {
		t.Fatal(err)
	}
	m = protocol.Message{ContentType: protocol.ContentAttachment, Body: a}
	if got := string(textBytes(&m)); got != Text(&m) || got != "Report.pdf" {
		t.Errorf("textBytes(attachment) = %q, Text %q", got, Text(&m))
	}
	m = protocol.Message{ContentType: protocol.ContentEdit, Body: []byte("x")}
	if textBytes(&m) != nil {
		t.Error("textBytes of an edit event is not empty")
	}
}

// BenchmarkGrams cuts the grams of one message as the indexer does: the
// reference (Text, then a map per message) against the cutter (the body
// in place, memory reused).
func BenchmarkGrams(b *testing.B) {
	for _, tc := range []struct{ name, text string }{
		{"latin", "Are we still on for lunch tomorrow? I can be there at 12:30, message 4711"},
		{"cjk", "我们明天中午还一起吃饭吗？我十二点半可以到，消息四七一一"},
		{"mixed", "明天 lunch 还 OK 吗? 12:30 在 Café Ünter 见 😀 #4711"},
	} {
		m := protocol.Message{ContentType: protocol.ContentText, Body: []byte(tc.text)}
		b.Run("text="+tc.name+"/cut=reference", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				refGrams(Text(&m))
			}
		})
		b.Run("text="+tc.name+"/cut=cutter", func(b *testing.B) {
			b.ReportAllocs()
			var c cutter
			for b.Loop() {
				c.grams(textBytes(&m))
			}
		})
	}
}
