package mil

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Parse parses MIL text as Apple's compiler writes it to model.mil and as
// hand-written ANE kernels spell it (mil-spec §2) into the same Program the
// builder makes, so the emulator runs exactly what the device would get.
// filename is used only in error messages; the error, if any, is a
// *ParseError locating the first problem.
//
// Beyond the compiler's own output it accepts what ANE programs in the wild
// use: both dialects and mixes of them (a scalar type is T or tensor<T, []>),
// any whitespace including CRLF, ops without a name attribute (the name
// defaults to the first output's), outputs in parentheses, decimal floats,
// inline literals as arguments, bare true/false as an argument value, and a
// leading UTF-8 byte order mark. Function attributes ([FlexibleShapeInformation
// = ...]) are skipped: anetop's kernels have static shapes. inf, -inf and nan
// are anetop's own spelling of non-finite floats; whether Apple's parser takes
// them is unknown. Float literals are rounded to their dtype; beyond its range
// they become ±inf, as an IEEE conversion does.
//
// It refuses anything outside the grammar; unknown or unsupported types
// (dtypes anetop has no DType for, dict/tuple/list/state outside buildInfo);
// undefined or redefined variables; reserved words as variable names;
// duplicate arguments or attributes; literals whose nesting or element count
// differs from their type; integers out of their dtype's range; float
// literals for integer types; BLOBFILE values of types a blob cannot hold.
// It does no type inference: (*Program).Check does that afterwards.
//
// Nothing recurses on the input's structure (nested literals are read with a
// counter per dimension), no allocation is sized by a declared shape, and the
// work is linear in the input.
func Parse(filename string, src []byte) (*Program, error) {
	p := &parser{lx: newLexer(filename, src), funcs: map[string]bool{}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	return p.program()
}

type parser struct {
	lx       lexer
	tok      token // current token
	ahead    token // the token after tok, valid if hasAhead
	hasAhead bool
	funcs    map[string]bool
	scope    map[string]*Var // variables of the function being parsed
	defined  map[string]Pos  // where each of them was defined
}

func (p *parser) advance() error {
	if p.hasAhead {
		p.tok, p.hasAhead = p.ahead, false
		return nil
	}
	t, err := p.lx.next()
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

// peek returns the token after the current one.
func (p *parser) peek() (token, error) {
	if !p.hasAhead {
		t, err := p.lx.next()
		if err != nil {
			return token{}, err
		}
		p.ahead, p.hasAhead = t, true
	}
	return p.ahead, nil
}

func (p *parser) errAt(pos Pos, format string, args ...any) error {
	return p.lx.errAt(pos, format, args...)
}

// unexpected reports the current token where something else was wanted.
func (p *parser) unexpected(what string) error {
	return p.errAt(p.tok.pos, "expected %s, found %s", what, p.tok.describe())
}

// expect consumes a token of kind k; context says where, e.g. "after arguments".
func (p *parser) expect(k tokKind, context string) error {
	if p.tok.kind != k {
		what := kindText(k)
		if context != "" {
			what += " " + context
		}
		return p.unexpected(what)
	}
	return p.advance()
}

// list reads item {"," item} and the closing token close. An empty list is
// allowed if empty is set. where completes "expected "," or ")" ..." messages.
func (p *parser) list(close tokKind, empty bool, where string, item func() error) error {
	if empty && p.tok.kind == close {
		return p.advance()
	}
	for {
		if err := item(); err != nil {
			return err
		}
		switch p.tok.kind {
		case tComma:
			if err := p.advance(); err != nil {
				return err
			}
		case close:
			return p.advance()
		default:
			return p.unexpected(`"," or ` + kindText(close) + " " + where)
		}
	}
}

// keyword consumes the identifier word.
func (p *parser) keyword(word, context string) error {
	if p.tok.kind != tIdent || p.tok.text != word {
		return p.unexpected(strconv.Quote(word) + " " + context)
	}
	return p.advance()
}

// ident consumes an identifier and returns it.
func (p *parser) ident(what string) (token, error) {
	t := p.tok
	if t.kind != tIdent {
		return t, p.unexpected(what)
	}
	return t, p.advance()
}

func (p *parser) program() (*Program, error) {
	if err := p.keyword("program", "at the start of the file"); err != nil {
		return nil, err
	}
	if err := p.expect(tLParen, `after "program"`); err != nil {
		return nil, err
	}
	// The version is kept as written: the printer picks the dialect from it.
	v := p.tok
	if (v.kind != tInt && v.kind != tFloat) || !isVersion(v.text) {
		return nil, p.unexpected("program version such as 1.3")
	}
	if !knownProgramVersion(v.text) {
		return nil, p.errAt(v.pos, "unsupported program version %s: %s", v.text, programVersionsHint)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := p.expect(tRParen, "after program version"); err != nil {
		return nil, err
	}
	prog := &Program{Version: v.text}
	if p.tok.kind == tLBrack {
		if err := p.programAttrs(prog); err != nil {
			return nil, err
		}
	}
	if err := p.expect(tLBrace, "to open the program body"); err != nil {
		return nil, err
	}
	for p.tok.kind == tIdent && p.tok.text == "func" {
		f, err := p.function()
		if err != nil {
			return nil, err
		}
		prog.Functions = append(prog.Functions, f)
	}
	if p.tok.kind != tRBrace {
		return nil, p.unexpected(`"func" or "}"`)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if p.tok.kind != tEOF {
		return nil, p.unexpected(`end of file after the program's closing "}"`)
	}
	return prog, nil
}

// isVersion accepts D+ or D+.D+.
func isVersion(s string) bool {
	a, b, dot := strings.Cut(s, ".")
	allDigits := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if !isDigit(s[i]) {
				return false
			}
		}
		return s != ""
	}
	return allDigits(a) && (!dot || allDigits(b))
}

// programAttrs reads [buildInfo = dict<...>({...})], the only program attribute
// Core ML writes. Others would be dropped silently by the model, so they are
// refused.
func (p *parser) programAttrs(prog *Program) error {
	if err := p.advance(); err != nil {
		return err
	}
	return p.list(tRBrack, false, "after program attribute", func() error {
		name, err := p.ident("program attribute name")
		if err != nil {
			return err
		}
		if name.text != "buildInfo" {
			return p.errAt(name.pos, "unknown program attribute %q (only buildInfo is supported)", name.text)
		}
		if prog.BuildInfo != nil {
			return p.errAt(name.pos, "duplicate program attribute %q", name.text)
		}
		if err := p.expect(tEq, "after attribute name"); err != nil {
			return err
		}
		prog.BuildInfo, err = p.stringDict()
		return err
	})
}

// stringDict reads dict<K, V>({{"k", "v"}, ...}) with K and V string types in
// either dialect. The result is non-nil even when empty, so an empty buildInfo
// prints back as ({}).
func (p *parser) stringDict() ([]KV, error) {
	if err := p.keyword("dict", "for buildInfo"); err != nil {
		return nil, err
	}
	if err := p.expect(tLAngle, `after "dict"`); err != nil {
		return nil, err
	}
	for i := 0; i < 2; i++ {
		tpos := p.tok.pos
		t, err := p.typ()
		if err != nil {
			return nil, err
		}
		if !t.Equal(ScalarOf(String)) {
			return nil, p.errAt(tpos, "buildInfo keys and values must be strings, found %v", t)
		}
		sep := tComma
		if i == 1 {
			sep = tRAngle
		}
		if err := p.expect(sep, "in dict type"); err != nil {
			return nil, err
		}
	}
	if err := p.expect(tLParen, "before dict value"); err != nil {
		return nil, err
	}
	if err := p.expect(tLBrace, "to open the dict entries"); err != nil {
		return nil, err
	}
	kvs := []KV{}
	seen := map[string]bool{}
	err := p.list(tRBrace, true, "after dict entry", func() error {
		if err := p.expect(tLBrace, "to open a dict entry"); err != nil {
			return err
		}
		k := p.tok
		if err := p.expect(tString, "as dict key"); err != nil {
			return err
		}
		if seen[k.text] {
			return p.errAt(k.pos, "duplicate dict key %s", shorten(k.raw))
		}
		seen[k.text] = true
		if err := p.expect(tComma, "after dict key"); err != nil {
			return err
		}
		v := p.tok
		if err := p.expect(tString, "as dict value"); err != nil {
			return err
		}
		kvs = append(kvs, KV{Key: k.text, Value: v.text})
		return p.expect(tRBrace, "to close a dict entry")
	})
	if err != nil {
		return nil, err
	}
	return kvs, p.expect(tRParen, "after dict value")
}

func (p *parser) function() (*Function, error) {
	f := &Function{Pos: p.tok.pos}
	if err := p.advance(); err != nil { // "func"
		return nil, err
	}
	name, err := p.ident("function name")
	if err != nil {
		return nil, err
	}
	if p.funcs[name.text] {
		return nil, p.errAt(name.pos, "function %q redefined", name.text)
	}
	p.funcs[name.text] = true
	f.Name = name.text
	if err := p.expect(tLAngle, "before the opset (func main<ios18>)"); err != nil {
		return nil, err
	}
	opset, err := p.ident("opset such as ios18")
	if err != nil {
		return nil, err
	}
	f.Opset = opset.text
	if err := p.expect(tRAngle, "after the opset"); err != nil {
		return nil, err
	}
	if err := p.expect(tLParen, "before function inputs"); err != nil {
		return nil, err
	}
	p.scope = map[string]*Var{}
	p.defined = map[string]Pos{}
	f.Inputs = []*Var{}
	err = p.list(tRParen, true, "after function input", func() error {
		v, err := p.declaration()
		if err != nil {
			return err
		}
		p.define(v)
		f.Inputs = append(f.Inputs, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if p.tok.kind == tLBrack {
		if err := p.skipBrackets(); err != nil {
			return nil, err
		}
	}
	if err := p.expect(tLBrace, "to open the function body"); err != nil {
		return nil, err
	}
	for p.tok.kind != tRBrace {
		if p.tok.kind != tIdent && p.tok.kind != tLParen {
			return nil, p.unexpected(`statement or "}"`)
		}
		op, err := p.statement()
		if err != nil {
			return nil, err
		}
		f.Ops = append(f.Ops, op)
	}
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := p.expect(tArrow, `after the function body (} -> (outputs);)`); err != nil {
		return nil, err
	}
	if err := p.expect(tLParen, `after "->"`); err != nil {
		return nil, err
	}
	f.Outputs = []*Var{}
	err = p.list(tRParen, true, "after function output", func() error {
		name, err := p.ident("output variable name")
		if err != nil {
			return err
		}
		v := p.scope[name.text]
		if v == nil {
			return p.errAt(name.pos, "function returns undefined variable %q", name.text)
		}
		f.Outputs = append(f.Outputs, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := p.expect(tSemi, "after function outputs"); err != nil {
		return nil, err
	}
	p.scope, p.defined = nil, nil
	return f, nil
}

// skipBrackets skips a balanced [...] group: function attributes such as
// FlexibleShapeInformation, which describe flexible shapes anetop does not
// run. Tokens are still lexed, so malformed strings or characters are caught.
func (p *parser) skipBrackets() error {
	var closers []tokKind
	for {
		switch p.tok.kind {
		case tLBrack:
			closers = append(closers, tRBrack)
		case tLParen:
			closers = append(closers, tRParen)
		case tLBrace:
			closers = append(closers, tRBrace)
		case tRBrack, tRParen, tRBrace:
			if want := closers[len(closers)-1]; p.tok.kind != want {
				return p.unexpected(kindText(want) + " in function attributes")
			}
			closers = closers[:len(closers)-1]
		case tEOF:
			return p.unexpected(`"]" to close function attributes`)
		}
		if err := p.advance(); err != nil {
			return err
		}
		if len(closers) == 0 {
			return nil
		}
	}
}

// declaration reads "type name": a function input or a statement output.
func (p *parser) declaration() (*Var, error) {
	t, err := p.typ()
	if err != nil {
		return nil, err
	}
	return p.declare(t)
}

// declare reads the name of a variable of type t and checks that it is new.
func (p *parser) declare(t Type) (*Var, error) {
	name, err := p.ident("variable name")
	if err != nil {
		return nil, err
	}
	if !ValidName(name.text) {
		return nil, p.errAt(name.pos, "%q is a reserved word and cannot name a variable", name.text)
	}
	if at, dup := p.defined[name.text]; dup {
		return nil, p.errAt(name.pos, "variable %q redefined (first defined at %v)", name.text, at)
	}
	p.defined[name.text] = name.pos
	return &Var{Name: name.text, Type: t}, nil
}

func (p *parser) define(v *Var) { p.scope[v.Name] = v }

// statement reads outputs = op(args)[attrs];
func (p *parser) statement() (*Operation, error) {
	op := &Operation{Pos: p.tok.pos}
	paren := p.tok.kind == tLParen
	if paren {
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	for {
		v, err := p.declaration()
		if err != nil {
			return nil, err
		}
		v.Op = op
		op.Outputs = append(op.Outputs, v)
		if p.tok.kind != tComma {
			break
		}
		if err := p.advance(); err != nil {
			return nil, err
		}
	}
	if paren {
		if err := p.expect(tRParen, "after parenthesised outputs"); err != nil {
			return nil, err
		}
	}
	if err := p.expect(tEq, "after statement outputs"); err != nil {
		return nil, err
	}
	typ, err := p.ident("operation type")
	if err != nil {
		return nil, err
	}
	op.Type = typ.text
	if err := p.expect(tLParen, "after operation type"); err != nil {
		return nil, err
	}
	var argNames names
	err = p.list(tRParen, true, "after argument", func() error {
		name, err := p.key("argument", &argNames)
		if err != nil {
			return err
		}
		arg, err := p.argValue(name.text)
		if err != nil {
			return err
		}
		op.Args = append(op.Args, arg)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(op.Args, func(a, b Arg) int { return strings.Compare(a.Name, b.Name) })
	named := false
	if p.tok.kind == tLBrack {
		if err := p.advance(); err != nil {
			return nil, err
		}
		var attrNames names
		err := p.list(tRBrack, false, "after attribute", func() error {
			name, err := p.key("attribute", &attrNames)
			if err != nil {
				return err
			}
			vpos := p.tok.pos
			if !p.atType() {
				return p.unexpected("typed value for attribute " + strconv.Quote(name.text))
			}
			v, err := p.value(true)
			if err != nil {
				return err
			}
			if name.text != "name" {
				op.Attrs = append(op.Attrs, Attr{Name: name.text, Value: v})
				return nil
			}
			s, ok := v.AsString()
			if !ok {
				return p.errAt(vpos, "name attribute must be a string, found %v", v.Type)
			}
			op.Name, named = s, true
			return nil
		})
		if err != nil {
			return nil, err
		}
		slices.SortFunc(op.Attrs, func(a, b Attr) int { return strings.Compare(a.Name, b.Name) })
	}
	if err := p.expect(tSemi, "after statement"); err != nil {
		return nil, err
	}
	if !named {
		// Hand-written ANE programs omit names and still compile (mil-spec §2.6).
		op.Name = op.Outputs[0].Name
	}
	if op.Type == "const" && len(op.Outputs) == 1 {
		op.Outputs[0].Const = op.Attr("val")
	}
	// Outputs come into scope only now: an op cannot read its own result.
	for _, v := range op.Outputs {
		p.define(v)
	}
	return op, nil
}

// key reads "name =" of an argument or attribute (what says which), refusing
// a name seen before.
func (p *parser) key(what string, seen *names) (token, error) {
	name, err := p.ident(what + " name")
	if err != nil {
		return name, err
	}
	if !seen.add(name.text) {
		return name, p.errAt(name.pos, "duplicate %s %q", what, name.text)
	}
	return name, p.expect(tEq, "after "+what+" name")
}

// names detects duplicate names among an operation's arguments or
// attributes: a linear scan for the usual handful, a map beyond that so a
// hostile statement with thousands of arguments stays linear.
type names struct {
	list []string
	set  map[string]bool
}

func (n *names) add(s string) bool {
	if n.set == nil && len(n.list) < 16 {
		if slices.Contains(n.list, s) {
			return false
		}
		n.list = append(n.list, s)
		return true
	}
	if n.set == nil {
		n.set = make(map[string]bool, 2*len(n.list))
		for _, x := range n.list {
			n.set[x] = true
		}
	}
	if n.set[s] {
		return false
	}
	n.set[s] = true
	return true
}

// argValue reads a variable name, an inline value, or a (…) tuple of them.
func (p *parser) argValue(arg string) (Arg, error) {
	a := Arg{Name: arg}
	if p.tok.kind != tLParen {
		b, err := p.binding(arg)
		if err != nil {
			return a, err
		}
		a.Bindings = []Binding{b}
		return a, nil
	}
	a.Tuple = true
	if err := p.advance(); err != nil {
		return a, err
	}
	err := p.list(tRParen, false, "in tuple", func() error {
		b, err := p.binding(arg)
		a.Bindings = append(a.Bindings, b)
		return err
	})
	return a, err
}

// typeWords are identifiers that start a type rather than name a variable.
var typeWords = map[string]bool{"tensor": true, "dict": true, "tuple": true, "list": true, "state": true}

// unsupportedDTypes are Core ML dtypes anetop has no DType for; named so that
// the error says "not supported" rather than "unknown".
var unsupportedDTypes = map[string]bool{
	"int4": true, "uint1": true, "uint2": true, "uint3": true, "uint4": true, "uint6": true,
	"fp8e4m3fn": true, "fp8e5m2": true, "complex64": true, "complex128": true,
}

func (p *parser) binding(arg string) (Binding, error) {
	t := p.tok
	if t.kind != tIdent {
		return Binding{}, p.unexpected("variable or value for argument " + strconv.Quote(arg))
	}
	if t.text == "true" || t.text == "false" {
		// A bare bool (transpose_y = true) appears in hand-written ANE tests;
		// it can only mean bool(...), as true and false cannot name variables.
		if err := p.advance(); err != nil {
			return Binding{}, err
		}
		return Binding{Value: BoolScalar(t.text == "true")}, nil
	}
	isType := p.atType()
	if unsupportedDTypes[t.text] {
		// int4 etc. are valid variable names too; a "(" after it means a literal.
		next, err := p.peek()
		if err != nil {
			return Binding{}, err
		}
		isType = next.kind == tLParen
	}
	if isType {
		v, err := p.value(true)
		if err != nil {
			return Binding{}, err
		}
		return Binding{Value: v}, nil
	}
	if !ValidName(t.text) {
		return Binding{}, p.unexpected("variable or value for argument " + strconv.Quote(arg))
	}
	v := p.scope[t.text]
	if v == nil {
		return Binding{}, p.errAt(t.pos, "undefined variable %q", t.text)
	}
	return Binding{Var: v}, p.advance()
}

// atType reports whether the current token starts a type: a dtype, a
// dtype anetop does not support, or a container type word. Such types are
// then refused by typ with a precise message.
func (p *parser) atType() bool {
	if p.tok.kind != tIdent {
		return false
	}
	_, ok := ParseDType(p.tok.text)
	return ok || typeWords[p.tok.text] || unsupportedDTypes[p.tok.text]
}

// typ reads a tensor type, either dialect's scalar spelling, and refuses the
// container types anetop has no model for.
func (p *parser) typ() (Type, error) {
	t := p.tok
	if t.kind != tIdent {
		return Type{}, p.unexpected("type")
	}
	if t.text != "tensor" {
		d, err := p.dtype()
		if err != nil {
			return Type{}, err
		}
		return ScalarOf(d), nil
	}
	if err := p.advance(); err != nil {
		return Type{}, err
	}
	if err := p.expect(tLAngle, `after "tensor"`); err != nil {
		return Type{}, err
	}
	d, err := p.dtype()
	if err != nil {
		return Type{}, err
	}
	if err := p.expect(tComma, "after tensor dtype"); err != nil {
		return Type{}, err
	}
	if err := p.expect(tLBrack, "to open tensor shape"); err != nil {
		return Type{}, err
	}
	shape := Shape{}
	err = p.list(tRBrack, true, "after dimension", func() error {
		// The checker's bound, enforced here already so that rank-proportional
		// work (nested literals, printing) stays small on hostile input.
		if len(shape) == MaxRank {
			return p.errAt(p.tok.pos, "tensor rank exceeds the maximum %d", MaxRank)
		}
		dim := p.tok
		switch {
		case dim.kind == tQuest:
			shape = append(shape, UnknownDim)
		case dim.kind == tInt && dim.text[0] != '-':
			n, err := strconv.ParseInt(dim.text, 10, 64)
			if err != nil || n > MaxElements {
				return p.errAt(dim.pos, "dimension %s is larger than 2^40", shorten(dim.text))
			}
			shape = append(shape, int(n))
		default:
			return p.unexpected(`dimension (a non-negative integer or "?")`)
		}
		return p.advance()
	})
	if err != nil {
		return Type{}, err
	}
	if err := p.expect(tRAngle, "after tensor shape"); err != nil {
		return Type{}, err
	}
	typ := Type{DType: d, Shape: shape}
	if err := typ.validate(); err != nil {
		return Type{}, p.errAt(t.pos, "%v", err)
	}
	return typ, nil
}

// dtype reads a dtype name.
func (p *parser) dtype() (DType, error) {
	t := p.tok
	if t.kind != tIdent {
		return InvalidDType, p.unexpected("dtype")
	}
	d, ok := ParseDType(t.text)
	switch {
	case ok:
		return d, p.advance()
	case unsupportedDTypes[t.text]:
		return InvalidDType, p.errAt(t.pos, "dtype %s is not supported by anetop", t.text)
	case typeWords[t.text]:
		return InvalidDType, p.errAt(t.pos, "type %s<...> is not supported here", t.text)
	}
	return InvalidDType, p.errAt(t.pos, "unknown type %q", t.text)
}

// value reads TYPE(literal) or, if blob is set, TYPE(BLOBFILE(...)). The
// literal's nesting must follow the type's shape exactly: the ANE compiler
// rejects a flat list for a rank-2 type (mil-spec §2.5).
func (p *parser) value(blob bool) (*Value, error) {
	start := p.tok.pos
	t, err := p.typ()
	if err != nil {
		return nil, err
	}
	if err := p.expect(tLParen, "before literal"); err != nil {
		return nil, err
	}
	v := &Value{Type: t}
	if p.tok.kind == tIdent && p.tok.text == "BLOBFILE" {
		if !blob {
			return nil, p.errAt(p.tok.pos, "BLOBFILE is not allowed here")
		}
		if v.Blob, err = p.blobFile(); err != nil {
			return nil, err
		}
	} else if err := p.literal(v, start); err != nil {
		return nil, err
	}
	if err := p.expect(tRParen, "after literal"); err != nil {
		return nil, err
	}
	if err := v.Check(); err != nil {
		return nil, p.errAt(start, "%v", err)
	}
	return v, nil
}

// blobFile reads BLOBFILE(path = S, offset = U) with the path and offset in
// either dialect's scalar spelling and in either order.
func (p *parser) blobFile() (*BlobRef, error) {
	if err := p.advance(); err != nil {
		return nil, err
	}
	if err := p.expect(tLParen, `after "BLOBFILE"`); err != nil {
		return nil, err
	}
	ref := &BlobRef{}
	var havePath, haveOffset bool
	for i := 0; i < 2; i++ {
		if i > 0 {
			if err := p.expect(tComma, "between BLOBFILE path and offset"); err != nil {
				return nil, err
			}
		}
		name, err := p.ident(`"path" or "offset"`)
		if err != nil {
			return nil, err
		}
		if err := p.expect(tEq, "after "+strconv.Quote(name.text)); err != nil {
			return nil, err
		}
		vpos := p.tok.pos
		if !p.atType() {
			return nil, p.unexpected("typed value for BLOBFILE " + name.text)
		}
		switch {
		case name.text == "path" && !havePath:
			v, err := p.value(false)
			if err != nil {
				return nil, err
			}
			s, ok := v.AsString()
			if !ok {
				return nil, p.errAt(vpos, "BLOBFILE path must be a string, found %v", v.Type)
			}
			ref.Path, havePath = s, true
		case name.text == "offset" && !haveOffset:
			v, err := p.value(false)
			if err != nil {
				return nil, err
			}
			if !v.Type.Equal(ScalarOf(UInt64)) {
				return nil, p.errAt(vpos, "BLOBFILE offset must be a uint64, found %v", v.Type)
			}
			ref.Offset, haveOffset = uint64(v.Ints[0]), true
		case name.text == "path" || name.text == "offset":
			return nil, p.errAt(name.pos, "duplicate BLOBFILE %s", name.text)
		default:
			return nil, p.errAt(name.pos, `expected "path" or "offset", found %s`, name.describe())
		}
	}
	if err := p.expect(tRParen, "after BLOBFILE offset"); err != nil {
		return nil, err
	}
	return ref, nil
}

// literal reads the elements of v, nested to v's rank, into the slice its
// dtype selects. It walks the nesting with a per-dimension counter instead of
// recursion.
func (p *parser) literal(v *Value, start Pos) error {
	shape := v.Type.Shape
	if !shape.Static() {
		return p.errAt(start, "literal of type %v has an unknown dimension", v.Type)
	}
	// Start small whatever the declared size: the elements actually present,
	// bounded by the input, decide how much is allocated.
	hint := min(shape.NumElements(), 1024)
	switch d := v.Type.DType; {
	case d.IsFloat():
		v.Floats = make([]float64, 0, hint)
	case d.IsInt():
		v.Ints = make([]int64, 0, hint)
	case d == Bool:
		v.Bools = make([]bool, 0, hint)
	case d == String:
		v.Strings = make([]string, 0, hint)
	}
	if len(shape) == 0 {
		return p.element(v)
	}
	if p.tok.kind != tLBrack {
		return p.unexpected(`"[" to open the literal of ` + v.Type.String())
	}
	rank := len(shape)
	counts := make([]int, rank)
	level := 0
	if err := p.advance(); err != nil {
		return err
	}
	for {
		// At the start of an item of the list at depth level, or its end.
		if p.tok.kind == tRBrack {
			if counts[level] != 0 {
				return p.unexpected(`literal element after ","`)
			}
			// An empty list: closed by the loop below.
		} else {
			if counts[level] == shape[level] {
				return p.errAt(p.tok.pos, "too many elements in dimension %d of %v literal: want %d", level, v.Type, shape[level])
			}
			if level < rank-1 {
				if p.tok.kind != tLBrack {
					return p.unexpected(`"[": a literal of ` + v.Type.String() + " must be nested to rank " + strconv.Itoa(rank))
				}
				if err := p.advance(); err != nil {
					return err
				}
				level++
				counts[level] = 0
				continue
			}
			if err := p.element(v); err != nil {
				return err
			}
			counts[level]++
		}
		// After an item: "," starts the next one, "]" closes lists.
		for {
			if p.tok.kind == tComma {
				if err := p.advance(); err != nil {
					return err
				}
				break
			}
			if p.tok.kind != tRBrack {
				return p.unexpected(`"," or "]" in literal`)
			}
			if counts[level] != shape[level] {
				return p.errAt(p.tok.pos, "too few elements in dimension %d of %v literal: got %d, want %d", level, v.Type, counts[level], shape[level])
			}
			if err := p.advance(); err != nil {
				return err
			}
			if level == 0 {
				return nil
			}
			level--
			counts[level]++
		}
	}
}

// element reads one scalar of v's dtype and appends it.
func (p *parser) element(v *Value) error {
	t := p.tok
	d := v.Type.DType
	want := func() error { return p.unexpected(d.String() + " literal") }
	switch {
	case d.IsFloat():
		var x float64
		switch {
		case t.kind == tInt || t.kind == tFloat:
			var err error
			x, err = parseFloatLit(t.text, d)
			if err != nil {
				return p.errAt(t.pos, "malformed %v literal %s", d, shorten(t.text))
			}
		case t.kind == tIdent && t.text == "inf":
			x = math.Inf(1)
		case t.kind == tIdent && t.text == "nan":
			x = math.NaN()
		default:
			return want()
		}
		v.Floats = append(v.Floats, RoundFloat(x, d))
	case d.IsInt():
		if t.kind == tFloat {
			return p.errAt(t.pos, "%v literal must be an integer, found %s", d, t.describe())
		}
		if t.kind != tInt {
			return want()
		}
		lo, hi := d.intRange()
		n, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil || n < lo || n > hi {
			return p.errAt(t.pos, "%v literal %s is out of range [%d, %d]", d, shorten(t.text), lo, hi)
		}
		v.Ints = append(v.Ints, n)
	case d == Bool:
		if t.kind != tIdent || (t.text != "true" && t.text != "false") {
			return p.unexpected("true or false")
		}
		v.Bools = append(v.Bools, t.text == "true")
	case d == String:
		if t.kind != tString {
			return want()
		}
		v.Strings = append(v.Strings, t.text)
	default:
		return want()
	}
	return p.advance()
}

// parseFloatLit converts a number token. fp32 is parsed at 32 bits so the
// decimal is rounded once, as C's strtof does; other dtypes go through float64
// and RoundFloat. Values beyond the dtype's range become ±inf, as an IEEE
// conversion does, rather than an error.
func parseFloatLit(s string, d DType) (float64, error) {
	if s == "-inf" {
		return math.Inf(-1), nil
	}
	bits := 64
	if d == FP32 {
		bits = 32
	}
	x, err := strconv.ParseFloat(s, bits)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return x, nil
		}
		return 0, err
	}
	return x, nil
}
