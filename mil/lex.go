package mil

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParseError is a syntax or resolution error in MIL text. Line and Col are
// 1-based; Col counts bytes, so a tab is one column.
type ParseError struct {
	File      string
	Line, Col int
	Msg       string
}

// Error formats the error as file:line:col: msg, the form editors and go vet
// use, so positions are clickable. An empty File is left out.
func (e *ParseError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

type tokKind uint8

const (
	tEOF    tokKind = iota
	tIdent          // [A-Za-z_][A-Za-z0-9_@]*
	tInt            // -?[0-9]+
	tFloat          // decimal with a fraction or exponent, C99 hex float, or -inf
	tString         // "..." with \" \\ \n escapes; text is the unescaped value
	tLParen
	tRParen
	tLBrack
	tRBrack
	tLBrace
	tRBrace
	tLAngle
	tRAngle
	tComma
	tEq
	tSemi
	tQuest
	tArrow // ->
)

var punctText = [...]string{
	tLParen: "(", tRParen: ")", tLBrack: "[", tRBrack: "]", tLBrace: "{", tRBrace: "}",
	tLAngle: "<", tRAngle: ">", tComma: ",", tEq: "=", tSemi: ";", tQuest: "?", tArrow: "->",
}

// punctKinds maps each one-byte punctuation token to its kind (tEOF for any
// other byte), derived from punctText so the two cannot disagree.
var punctKinds = func() (k [utf8.RuneSelf]tokKind) {
	for kind, text := range punctText {
		if len(text) == 1 {
			k[text[0]] = tokKind(kind)
		}
	}
	return k
}()

// kindText spells a token kind for "expected ..." messages.
func kindText(k tokKind) string {
	switch k {
	case tEOF:
		return "end of file"
	case tIdent:
		return "identifier"
	case tInt:
		return "integer"
	case tFloat:
		return "number"
	case tString:
		return "string"
	}
	return strconv.Quote(punctText[k])
}

type token struct {
	kind tokKind
	pos  Pos
	// text is the identifier or number as written, or the unescaped content of
	// a string.
	text string
	// raw is the source text of the token, for messages.
	raw string
}

// describe spells a token for "found ..." messages: punctuation, names and
// numbers quoted as written, long tokens shortened.
func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of file"
	case tString:
		return "string " + shorten(t.raw)
	}
	return strconv.Quote(shorten(t.raw))
}

func shorten(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// lexer splits MIL text into tokens on demand. It keeps no token history, so
// memory is proportional to the input only through the values built from it.
type lexer struct {
	file      string
	src       []byte
	off       int
	line      int
	lineStart int // offset of the first byte of the current line
}

func newLexer(file string, src []byte) lexer {
	lx := lexer{file: file, src: src, line: 1}
	// A UTF-8 byte order mark is not part of the program; editors on Windows
	// add one, and skipping it costs nothing.
	if len(src) >= 3 && src[0] == 0xEF && src[1] == 0xBB && src[2] == 0xBF {
		lx.off, lx.lineStart = 3, 3
	}
	return lx
}

func (lx *lexer) pos(off int) Pos { return Pos{Line: lx.line, Col: off - lx.lineStart + 1} }

func (lx *lexer) errAt(p Pos, format string, args ...any) *ParseError {
	return &ParseError{File: lx.file, Line: p.Line, Col: p.Col, Msg: fmt.Sprintf(format, args...)}
}

func isIdentStart(c byte) bool { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) || c == '@' }
func isHexDigit(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// next returns the next token. Whitespace is space, tab, CR and LF; a CR is
// plain whitespace, so CRLF files count lines like LF files.
func (lx *lexer) next() (token, error) {
	src := lx.src
	for lx.off < len(src) {
		c := src[lx.off]
		if c == '\n' {
			lx.off++
			lx.line++
			lx.lineStart = lx.off
			continue
		}
		if c == ' ' || c == '\t' || c == '\r' {
			lx.off++
			continue
		}
		break
	}
	start := lx.off
	p := lx.pos(start)
	if start >= len(src) {
		return token{kind: tEOF, pos: p}, nil
	}
	c := src[start]
	switch {
	case isIdentStart(c):
		end := start + 1
		for end < len(src) && isIdentChar(src[end]) {
			end++
		}
		lx.off = end
		s := string(src[start:end])
		return token{kind: tIdent, pos: p, text: s, raw: s}, nil
	case isDigit(c):
		return lx.number(p)
	case c == '-':
		if start+1 < len(src) {
			switch n := src[start+1]; {
			case n == '>':
				lx.off += 2
				return token{kind: tArrow, pos: p, raw: "->"}, nil
			case isDigit(n):
				return lx.number(p)
			case n == 'i' && lx.hasWord(start+1, "inf"):
				lx.off = start + 4
				return token{kind: tFloat, pos: p, text: "-inf", raw: "-inf"}, nil
			}
		}
		return token{}, lx.errAt(p, `unexpected "-" (not followed by a number or ">")`)
	case c == '"':
		return lx.str(p)
	}
	if c < utf8.RuneSelf {
		if k := punctKinds[c]; k != tEOF {
			lx.off++
			return token{kind: k, pos: p, raw: punctText[k]}, nil
		}
	}
	r, _ := utf8.DecodeRune(src[start:])
	if r == utf8.RuneError {
		return token{}, lx.errAt(p, "unexpected byte 0x%02x", c)
	}
	if c == '/' && start+1 < len(src) && src[start+1] == '/' {
		// Whether Apple's parser takes comments is unknown (mil-spec §2.7);
		// a program that relies on them might not compile on a Mac.
		return token{}, lx.errAt(p, "comments are not part of MIL text")
	}
	return token{}, lx.errAt(p, "unexpected character %q", r)
}

// hasWord reports whether src[at:] starts with word followed by a non-name
// byte.
func (lx *lexer) hasWord(at int, word string) bool {
	end := at + len(word)
	if end > len(lx.src) || string(lx.src[at:end]) != word {
		return false
	}
	return end == len(lx.src) || !isIdentChar(lx.src[end])
}

// number scans -?digits, decimal floats (-?D+(.D*)?([eE][+-]?D+)?) and C99 hex
// floats (-?0x H*(.H*)? p[+-]?D+, at least one hex digit, as C allows). The
// text is handed to strconv.ParseFloat/ParseInt later, so the scanner admits
// only spellings whose meaning is the same in C and Go (no underscores, no
// "Inf", no hex integers).
func (lx *lexer) number(p Pos) (token, error) {
	src := lx.src
	start := lx.off
	i := start
	if src[i] == '-' {
		i++
	}
	digits := func(ok func(byte) bool) int {
		n := 0
		for i < len(src) && ok(src[i]) {
			i++
			n++
		}
		return n
	}
	// exponent scans the exponent after its marker (p or e): [+-]?D+.
	exponent := func() bool {
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		return digits(isDigit) > 0
	}
	kind := tInt
	bad := func(why string) (token, error) {
		for i < len(src) && (isIdentChar(src[i]) || src[i] == '.') {
			i++
		}
		return token{}, lx.errAt(p, "malformed number %q: %s", shorten(string(src[start:i])), why)
	}
	if src[i] == '0' && i+1 < len(src) && (src[i+1] == 'x' || src[i+1] == 'X') {
		i += 2
		kind = tFloat
		n := digits(isHexDigit)
		if i < len(src) && src[i] == '.' {
			i++
			n += digits(isHexDigit)
		}
		if n == 0 {
			return bad("no hex digits")
		}
		if i >= len(src) || (src[i] != 'p' && src[i] != 'P') {
			return bad("a hex float needs a p exponent")
		}
		if !exponent() {
			return bad("no exponent digits")
		}
	} else {
		digits(isDigit)
		if i < len(src) && src[i] == '.' {
			i++
			kind = tFloat
			digits(isDigit)
		}
		if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
			kind = tFloat
			if !exponent() {
				return bad("no exponent digits")
			}
		}
	}
	if i < len(src) && (isIdentChar(src[i]) || src[i] == '.') {
		return bad("unexpected character after number")
	}
	lx.off = i
	s := string(src[start:i])
	return token{kind: kind, pos: p, text: s, raw: s}, nil
}

// str scans a string literal. The escapes are the grammar's \" \\ \n; any
// other byte except a raw newline stands for itself, so every string the
// printer writes reads back unchanged.
func (lx *lexer) str(p Pos) (token, error) {
	src := lx.src
	i := lx.off + 1
	var b *strings.Builder // allocated at the first escape only
	from := i
	for {
		if i >= len(src) || src[i] == '\n' {
			return token{}, lx.errAt(p, "unterminated string literal")
		}
		c := src[i]
		if c == '"' {
			break
		}
		if c != '\\' {
			i++
			continue
		}
		if b == nil {
			b = &strings.Builder{}
		}
		b.Write(src[from:i])
		if i+1 >= len(src) {
			return token{}, lx.errAt(p, "unterminated string literal")
		}
		switch src[i+1] {
		case '"':
			b.WriteByte('"')
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		default:
			r, _ := utf8.DecodeRune(src[i+1:])
			return token{}, lx.errAt(lx.pos(i), `unknown escape sequence "\%c" in string (only \", \\ and \n)`, r)
		}
		i += 2
		from = i
	}
	raw := string(src[lx.off : i+1])
	text := raw[1 : len(raw)-1]
	if b != nil {
		b.Write(src[from:i])
		text = b.String()
	}
	lx.off = i + 1
	return token{kind: tString, pos: p, text: text, raw: raw}, nil
}
