package mil

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Program is a MIL program: a version, build information and functions. anetop's
// kernels have exactly one function, "main".
type Program struct {
	// Version is the text header's version: "1.3" for the iOS18 dialect that
	// spells scalars bare (fp16, string("x")), "1.0" for the older dialect that
	// spells them tensor<fp16, []>. The printer picks the dialect from it.
	Version   string
	BuildInfo []KV
	Functions []*Function
}

// KV is one entry of a string dictionary, such as the buildInfo attribute.
type KV struct{ Key, Value string }

// Function is a typed SSA function: inputs, operations in topological order,
// and the variables it returns.
type Function struct {
	Name    string
	Opset   string // "ios16", "ios17", "ios18"
	Inputs  []*Var
	Ops     []*Operation
	Outputs []*Var
	Pos     Pos
}

// Var is an SSA value: a function input or an operation output.
type Var struct {
	Name string
	Type Type
	// Const holds the value when the variable is the output of a const op, so
	// shape inference can read axes, perms and shapes. Nil otherwise.
	Const *Value
	// Op is the operation that produces the variable; nil for function inputs.
	Op *Operation
}

// Operation is one statement: outputs = Type(args)[name = Name, attrs...].
type Operation struct {
	Type    string // the op, e.g. "conv"
	Name    string // the name attribute
	Args    []Arg  // inputs, in the order they are printed (sorted by name)
	Attrs   []Attr // attributes other than name: const's val, constexpr parameters up to ios17
	Outputs []*Var
	Pos     Pos // where the statement starts in parsed text; zero for built programs
}

// Arg is one named input of an operation. A variadic input (concat's values)
// is a tuple of several bindings and is printed in parentheses.
type Arg struct {
	Name     string
	Bindings []Binding
	Tuple    bool
}

// Binding is either a variable or an inline literal value.
type Binding struct {
	Var   *Var
	Value *Value
}

// Attr is an attribute of an operation other than its name.
type Attr struct {
	Name  string
	Value *Value
}

// Pos is a position in MIL text, 1-based.
type Pos struct{ Line, Col int }

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// IsValid reports whether the position was set.
func (p Pos) IsValid() bool { return p.Line > 0 }

// BlobRef points at a blob in a weight file: Path is the BLOBFILE path exactly as
// written in the program (the key of Weights), Offset the offset of the blob's
// 64-byte metadata record, not of its data.
type BlobRef struct {
	Path   string
	Offset uint64
}

// Value is a literal: an immediate scalar or tensor, or a reference to a blob.
// Exactly one of the slices (or Blob) is used, chosen by Type.DType: Floats for
// float types, Ints for integer types, Bools for bool, Strings for string.
// Elements are in row-major order; a scalar has one element.
type Value struct {
	Type    Type
	Floats  []float64
	Ints    []int64
	Bools   []bool
	Strings []string
	Blob    *BlobRef
}

// Weights maps each BLOBFILE path a program references (for example
// "@model_path/weights/weight.bin") to the whole content of that blob file.
type Weights map[string][]byte

// Main returns the function named "main", or nil.
func (p *Program) Main() *Function {
	for _, f := range p.Functions {
		if f.Name == "main" {
			return f
		}
	}
	return nil
}

// Legacy reports whether the program uses the pre-1.3 dialect, in which scalar
// types and literals are spelled tensor<T, []>.
func (p *Program) Legacy() bool {
	major, minor, ok := parseVersion(p.Version)
	return ok && (major < 1 || (major == 1 && minor < 3))
}

// programVersions are the program versions the Neural Engine's compiler
// takes, exactly as written in the header: "1.0", the dialect of opsets ios15
// to ios17 (what Core ML writes for ios16), and "1.3", the ios18 dialect
// (mil-spec §2.1). The parser and Check refuse any other.
var programVersions = []string{"1.0", "1.3"}

// programVersionsHint ends the error for any other version.
const programVersionsHint = "the Neural Engine takes program(1.0) (opsets ios15 to ios17) or program(1.3) (ios18)"

// knownProgramVersion reports whether v, as written in a program(v) header,
// is one of programVersions.
func knownProgramVersion(v string) bool { return slices.Contains(programVersions, v) }

func parseVersion(v string) (major, minor int, ok bool) {
	a, b, found := strings.Cut(v, ".")
	major, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, false
	}
	if found {
		if minor, err = strconv.Atoi(b); err != nil {
			return 0, 0, false
		}
	}
	return major, minor, true
}

// Arg returns the input with the given name, or nil.
func (op *Operation) Arg(name string) *Arg {
	for i := range op.Args {
		if op.Args[i].Name == name {
			return &op.Args[i]
		}
	}
	return nil
}

// Input returns the variable bound to a single-valued input, or nil if the input
// is absent, a tuple, or an inline literal.
func (op *Operation) Input(name string) *Var {
	a := op.Arg(name)
	if a == nil || a.Tuple || len(a.Bindings) != 1 {
		return nil
	}
	return a.Bindings[0].Var
}

// Attr returns the attribute with the given name, or nil.
func (op *Operation) Attr(name string) *Value {
	for _, a := range op.Attrs {
		if a.Name == name {
			return a.Value
		}
	}
	return nil
}

// Where names the operation for error messages: `conv "q" at 12:13`.
func (op *Operation) Where() string {
	s := fmt.Sprintf("%s %q", op.Type, op.Name)
	if op.Pos.IsValid() {
		s += " at " + op.Pos.String()
	}
	return s
}

// Type returns the binding's type.
func (b Binding) Type() Type {
	if b.Var != nil {
		return b.Var.Type
	}
	if b.Value != nil {
		return b.Value.Type
	}
	return Type{}
}

// ConstValue returns the compile-time value of the binding: the literal itself,
// or the value of a const variable. Nil if the binding is a runtime value.
func (b Binding) ConstValue() *Value {
	if b.Value != nil {
		return b.Value
	}
	if b.Var != nil {
		return b.Var.Const
	}
	return nil
}

// reserved lists words that Core ML's tools refuse as identifiers.
var reserved = map[string]bool{
	"any": true, "bool": true, "program": true, "func": true, "tensor": true,
	"list": true, "dict": true, "tuple": true, "true": true, "false": true,
	"string": true, "bf16": true, "fp16": true, "fp32": true, "fp64": true,
	"int8": true, "int16": true, "int32": true, "int64": true, "uint8": true,
	"uint16": true, "uint32": true, "uint64": true, "state": true,
	"BLOBFILE": true,
}

// ValidName reports whether s may name a variable: [A-Za-z_][A-Za-z0-9_@]*
// and not a dtype or keyword.
func ValidName(s string) bool {
	if s == "" || reserved[s] {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		case i > 0 && ((c >= '0' && c <= '9') || c == '@'):
		default:
			return false
		}
	}
	return true
}

// BlobPaths lists, in order of first use and without repeats, the BLOBFILE
// paths the function's literals read: the keys its Weights must have.
func (f *Function) BlobPaths() []string {
	seen := map[string]bool{}
	var out []string
	f.blobValues(func(v *Value) {
		if !seen[v.Blob.Path] {
			seen[v.Blob.Path] = true
			out = append(out, v.Blob.Path)
		}
	})
	return out
}

// blobValues calls fn for each BLOBFILE literal of the function's ops.
func (f *Function) blobValues(fn func(v *Value)) {
	add := func(v *Value) {
		if v != nil && v.Blob != nil {
			fn(v)
		}
	}
	for _, op := range f.Ops {
		if op == nil {
			continue
		}
		for _, a := range op.Args {
			for _, b := range a.Bindings {
				add(b.Value)
			}
		}
		for _, a := range op.Attrs {
			add(a.Value)
		}
	}
}

// BlobFileSizes returns, for each BLOBFILE path the program's literals read,
// the least size in bytes of that weight file: the end of the furthest blob
// read, its offset plus the 64-byte metadata plus the data its type needs.
// Sizes that do not fit a uint64 saturate at math.MaxUint64; a literal with no
// static element count counts its metadata only.
func (p *Program) BlobFileSizes() map[string]uint64 {
	need := map[string]uint64{}
	for _, f := range p.Functions {
		if f == nil {
			continue
		}
		f.blobValues(func(v *Value) {
			end := satAdd(v.Blob.Offset, blobMetaSize)
			if ne := v.Type.Shape.NumElements(); ne > 0 && v.Type.DType.Size() > 0 {
				n, es := uint64(ne), uint64(v.Type.DType.Size())
				size := uint64(math.MaxUint64)
				if n <= math.MaxUint64/es {
					size = n * es
				}
				end = satAdd(end, size)
			}
			need[v.Blob.Path] = max(need[v.Blob.Path], end)
		})
	}
	return need
}

// satAdd is a+b, or math.MaxUint64 if that overflows.
func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}
