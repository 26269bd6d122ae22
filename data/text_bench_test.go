package data

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// storiesText returns at least n bytes of generated stories, each ended by a
// DocSeparator line, as in the TinyStories text release.
func storiesText(n int) string {
	var sb strings.Builder
	for seed := uint64(BuiltinSeed); sb.Len() < n; seed++ {
		for _, s := range GenerateStories(seed, BuiltinStories) {
			sb.WriteString(s)
			sb.WriteString("\n" + DocSeparator + "\n")
			if sb.Len() >= n {
				break
			}
		}
	}
	return sb.String()
}

// BenchmarkTokenizeTextFile tokenizes ~10 MB of stories with separators
// (the TinyStories shape), and 2 MB of one separator-free document, into a
// fresh cache each iteration. MB/s is of text read.
func BenchmarkTokenizeTextFile(b *testing.B) {
	stories := storiesText(10 << 20)
	for _, bc := range []struct {
		name  string
		vocab int
		text  string
	}{
		{"stories/vocab512", 512, stories},
		{"stories/vocab4096", 4096, stories},
		{"onedoc/vocab4096", 4096, strings.ReplaceAll(stories[:2<<20], DocSeparator, "")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := Builtin(bc.vocab)
			if err != nil {
				b.Fatal(err)
			}
			p := filepath.Join(b.TempDir(), "text.txt")
			if err := os.WriteFile(p, []byte(bc.text), 0o644); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(bc.text)))
			for b.Loop() {
				os.Remove(CachePath(p, c.Tokenizer))
				if _, err := TokenizeTextFile(p, c.Tokenizer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
