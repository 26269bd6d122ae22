package mil

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// Print renders p as MIL text in the layout Apple's compiler writes to model.mil
// (mil-spec §2.7): four-space function headers, twelve-space statements,
// arguments and attributes sorted by name, ", " and " = " separators, floats as
// C99 hex floats. The dialect follows p.Version: scalars are spelled bare
// (fp16, string("x")) from 1.3 on and tensor<fp16, []> before. The output is a
// pure function of p, byte for byte, so kernels can be cached by their text.
func Print(p *Program) []byte {
	pr := printer{legacy: p.Legacy()}
	pr.program(p)
	return []byte(pr.b.String())
}

type printer struct {
	b      strings.Builder
	legacy bool
}

func (pr *printer) program(p *Program) {
	b := &pr.b
	b.WriteString("program(")
	b.WriteString(p.Version)
	b.WriteString(")\n")
	if p.BuildInfo != nil {
		b.WriteString("[buildInfo = dict<")
		b.WriteString(pr.typ(ScalarOf(String)))
		b.WriteString(", ")
		b.WriteString(pr.typ(ScalarOf(String)))
		b.WriteString(">({")
		for i, kv := range p.BuildInfo {
			pr.sep(i)
			b.WriteString("{")
			b.WriteString(quote(kv.Key))
			b.WriteString(", ")
			b.WriteString(quote(kv.Value))
			b.WriteString("}")
		}
		b.WriteString("})]\n")
	}
	b.WriteString("{\n")
	for _, f := range p.Functions {
		pr.function(f)
	}
	b.WriteString("}\n")
}

func (pr *printer) function(f *Function) {
	b := &pr.b
	b.WriteString("    func ")
	b.WriteString(f.Name)
	b.WriteString("<")
	b.WriteString(f.Opset)
	b.WriteString(">(")
	pr.decls(f.Inputs)
	b.WriteString(") {\n")
	for _, op := range f.Ops {
		pr.statement(op)
	}
	b.WriteString("        } -> (")
	for i, out := range f.Outputs {
		pr.sep(i)
		b.WriteString(out.Name)
	}
	b.WriteString(");\n")
}

func (pr *printer) statement(op *Operation) {
	b := &pr.b
	b.WriteString("            ")
	pr.decls(op.Outputs)
	b.WriteString(" = ")
	b.WriteString(op.Type)
	b.WriteString("(")
	args := slices.Clone(op.Args)
	slices.SortStableFunc(args, func(x, y Arg) int { return strings.Compare(x.Name, y.Name) })
	for i, a := range args {
		pr.sep(i)
		b.WriteString(a.Name)
		b.WriteString(" = ")
		if a.Tuple {
			b.WriteString("(")
		}
		for j, bind := range a.Bindings {
			pr.sep(j)
			if bind.Var != nil {
				b.WriteString(bind.Var.Name)
			} else if bind.Value != nil {
				pr.value(bind.Value)
			}
		}
		if a.Tuple {
			b.WriteString(")")
		}
	}
	b.WriteString(")[")
	attrs := append([]Attr{{Name: "name", Value: StringScalar(op.Name)}}, op.Attrs...)
	slices.SortStableFunc(attrs, func(x, y Attr) int { return strings.Compare(x.Name, y.Name) })
	for i, a := range attrs {
		pr.sep(i)
		b.WriteString(a.Name)
		b.WriteString(" = ")
		pr.value(a.Value)
	}
	b.WriteString("];\n")
}

// decls writes variable declarations, "type name, type name": a function's
// inputs or a statement's outputs.
func (pr *printer) decls(vs []*Var) {
	b := &pr.b
	for i, v := range vs {
		pr.sep(i)
		b.WriteString(pr.typ(v.Type))
		b.WriteString(" ")
		b.WriteString(v.Name)
	}
}

// sep writes the ", " that precedes every list item but the first.
func (pr *printer) sep(i int) {
	if i > 0 {
		pr.b.WriteString(", ")
	}
}

// typ spells a type in the printer's dialect.
func (pr *printer) typ(t Type) string {
	if pr.legacy && t.IsScalar() {
		return "tensor<" + t.DType.String() + ", []>"
	}
	return t.String()
}

func (pr *printer) value(v *Value) {
	b := &pr.b
	b.WriteString(pr.typ(v.Type))
	b.WriteString("(")
	if v.Blob != nil {
		b.WriteString("BLOBFILE(path = ")
		pr.value(StringScalar(v.Blob.Path))
		b.WriteString(", offset = ")
		b.WriteString(pr.typ(ScalarOf(UInt64)))
		b.WriteString("(")
		b.WriteString(strconv.FormatUint(v.Blob.Offset, 10))
		b.WriteString("))")
	} else if v.Type.IsScalar() {
		pr.elem(v, 0)
	} else {
		pr.nested(v, v.Type.Shape, 0)
	}
	b.WriteString(")")
}

// nested prints the elements of v from flat index start as a list nested to
// the rank of shape, as the compiler requires for rank ≥ 2 literals.
func (pr *printer) nested(v *Value, shape Shape, start int) {
	b := &pr.b
	b.WriteString("[")
	stride := 1
	for _, d := range shape[1:] {
		stride *= d
	}
	for i := 0; i < shape[0]; i++ {
		pr.sep(i)
		if len(shape) == 1 {
			pr.elem(v, start+i)
		} else {
			pr.nested(v, shape[1:], start+i*stride)
		}
	}
	b.WriteString("]")
}

func (pr *printer) elem(v *Value, i int) {
	b := &pr.b
	switch d := v.Type.DType; {
	case d.IsFloat() && i < len(v.Floats):
		b.WriteString(FormatFloat(v.Floats[i], d))
	case d.IsInt() && i < len(v.Ints):
		b.WriteString(strconv.FormatInt(v.Ints[i], 10))
	case d == Bool && i < len(v.Bools):
		b.WriteString(strconv.FormatBool(v.Bools[i]))
	case d == String && i < len(v.Strings):
		b.WriteString(quote(v.Strings[i]))
	default:
		// A malformed value (Value.Check fails); print a zero of the right kind so
		// the text still parses and the checker reports the real problem.
		switch {
		case d == Bool:
			b.WriteString("false")
		case d == String:
			b.WriteString(`""`)
		default:
			b.WriteString("0")
		}
	}
}

// FormatFloat writes x, rounded to dtype d, as a C99 hex float the way Apple's
// compiler prints it: shortest digits, no zero padding in the exponent
// ("0x1p-24", "-0x1.388p+13", "0x0p+0"). Non-finite values, whose spelling the
// hardware's parser is not known to accept, are written inf, -inf and nan.
func FormatFloat(x float64, d DType) string {
	x = RoundFloat(x, d)
	switch {
	case math.IsNaN(x):
		return "nan"
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	}
	bits := 32
	if d == FP64 {
		bits = 64
	}
	s := strconv.FormatFloat(x, 'x', -1, bits)
	// Go writes at least two exponent digits ("p+00", "p-03"); C writes one.
	p := strings.IndexByte(s, 'p')
	exp := strings.TrimLeft(s[p+2:], "0")
	if exp == "" {
		exp = "0"
	}
	return s[:p+2] + exp
}

// quote writes a MIL string literal; only the quote, backslash and newline are
// escaped, as the grammar defines no other escapes.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
