package bench

import (
	"math/rand/v2"
	"sync"
)

// Text bodies. A stamped body is the send time and zeros, which gives the
// server's text index next to nothing to do; real messages are words, each
// a few grams of the index. With P2POptions.Text the rest of a body is
// words drawn from a made-up vocabulary of vocabularySize words (two to
// eight letters, from syllables) with Zipf's law, as natural text has it.

const vocabularySize = 5000

var (
	vocabOnce sync.Once
	vocab     []string
)

// vocabulary makes the word list once; it is the same in every run.
func vocabulary() []string {
	vocabOnce.Do(func() {
		syllables := []string{
			"a", "an", "ar", "ba", "be", "ch", "co", "da", "de", "e", "el", "en", "er", "fa", "ga",
			"ha", "he", "i", "in", "is", "ka", "la", "le", "li", "lo", "ma", "me", "mi", "mo", "na",
			"ne", "no", "o", "on", "or", "ou", "pa", "pe", "ra", "re", "ri", "ro", "sa", "se", "sh",
			"si", "st", "ta", "te", "th", "ti", "to", "tr", "u", "ur", "va", "ve", "wa", "we", "yo",
		}
		r := rand.New(rand.NewPCG(1, 2))
		seen := make(map[string]bool, vocabularySize)
		for len(vocab) < vocabularySize {
			w := ""
			for n := 1 + r.IntN(4); n > 0 || len(w) < 2; n-- {
				w += syllables[r.IntN(len(syllables))]
			}
			if !seen[w] {
				seen[w] = true
				vocab = append(vocab, w)
			}
		}
	})
	return vocab
}

// words fills b with words separated by spaces, drawn with r.
func words(b []byte, r *rand.Rand) {
	v := vocabulary()
	z := rand.NewZipf(r, 1.1, 1, uint64(len(v)-1))
	for i := 0; i < len(b); {
		i += copy(b[i:], v[z.Uint64()])
		if i < len(b) {
			b[i] = ' '
			i++
		}
	}
}
