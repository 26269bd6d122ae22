package mil

import (
	"fmt"
	"slices"
	"strings"
)

// Target is a Core ML deployment target. It fixes a function's opset (which ops
// and op versions exist) and, for the builder, the text dialect.
type Target int

// The deployment targets anetop knows. IOS18 is the newest opset and the only
// one with scaled_dot_product_attention; IOS16 is the dialect older ANEs
// (M1/M2) are reported to need.
const (
	IOS15 Target = 15
	IOS16 Target = 16
	IOS17 Target = 17
	IOS18 Target = 18
)

// Valid reports whether t is one of the defined targets.
func (t Target) Valid() bool { return t >= IOS15 && t <= IOS18 }

// String returns the opset name as MIL text spells it: "ios18".
func (t Target) String() string {
	if t.Valid() {
		return fmt.Sprintf("ios%d", int(t))
	}
	return fmt.Sprintf("target(%d)", int(t))
}

// Opset is the name written in func main<…>; the same as String.
func (t Target) Opset() string { return t.String() }

// Version is the program version the builder writes for t: "1.3" (bare scalar
// spelling) for iOS18, "1.0" (tensor<T, []> spelling) before, following what
// Apple's compiler prints for each spec version (mil-spec §2.1).
func (t Target) Version() string {
	if t >= IOS18 {
		return "1.3"
	}
	return "1.0"
}

// ParseTarget maps an opset name ("ios16") to its Target.
func ParseTarget(opset string) (Target, bool) {
	for t := IOS15; t <= IOS18; t++ {
		if t.String() == opset {
			return t, true
		}
	}
	return 0, false
}

// MaxRank bounds the rank of every tensor the checker accepts. Core ML itself
// rarely goes beyond rank 5; the bound keeps fuzzed programs from building
// absurd shapes.
const MaxRank = 16

// maxSplits bounds the number of outputs split may produce, for the same
// reason: num_splits is one literal and must not allocate millions of types.
const maxSplits = 1 << 16

// InputSpec describes one named input of an op.
type InputSpec struct {
	Name     string
	Required bool
	// Const inputs must be compile-time constants: an inline literal or the
	// output of a const or constexpr_* op. anetop also requires the index
	// inputs of reshape and the slice ops to be constant (MIL allows runtime
	// values there, but the output shape would then be dynamic, which the ANE
	// cannot run).
	Const bool
	// Tuple inputs are variadic and written in parentheses: values = (a, b).
	Tuple bool
	// Default returns the value an omitted optional input takes in op, so an
	// emulator can fill it in. Nil (or a nil result) means omission has a
	// meaning of its own that no value spells (conv's bias aside, e.g. split's
	// num_splits or quantize's axis).
	Default func(op *Operation, t Target) *Value
}

// OpSpec describes an op: its inputs, the first opset that has it, and its
// type inference. It is the single source of truth for shape rules shared by
// the builder, the checker and the emulator.
type OpSpec struct {
	Type   string
	Since  Target
	Inputs []InputSpec
	// ParamsAsAttrs marks constexpr ops, whose parameters may be written as
	// attributes (the form of opsets up to iOS17) instead of inputs (iOS18).
	ParamsAsAttrs bool
	infer         func(c *inferCtx) ([]Type, error)
}

// Input returns the spec of the named input, or nil.
func (s *OpSpec) Input(name string) *InputSpec {
	for i := range s.Inputs {
		if s.Inputs[i].Name == name {
			return &s.Inputs[i]
		}
	}
	return nil
}

// LookupOp returns the spec of an op type.
func LookupOp(opType string) (*OpSpec, bool) {
	s, ok := opRegistry[opType]
	return s, ok
}

// OpTypes returns the names of all registered ops, sorted.
func OpTypes() []string {
	names := make([]string, 0, len(opRegistry))
	for n := range opRegistry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// An OpError reports an operation that does not type-check.
type OpError struct {
	Op    *Operation
	Input string // the offending input or attribute; "" when not specific
	Msg   string
}

func (e *OpError) Error() string { return e.Op.Where() + ": " + e.Msg }

// InferTypes checks op against its spec under target t and returns the types
// of its outputs. It validates the argument structure (known inputs, no
// duplicates, required inputs present, constants where constants are needed,
// tuples where tuples are needed), every literal, the dtypes, and the shapes.
// The error names the op and the input. It never panics, whatever op holds.
func InferTypes(op *Operation, t Target) ([]Type, error) {
	if op == nil {
		return nil, fmt.Errorf("nil operation")
	}
	if !t.Valid() {
		return nil, &OpError{Op: op, Msg: fmt.Sprintf("unknown target %v", t)}
	}
	spec, ok := opRegistry[op.Type]
	if !ok {
		return nil, &OpError{Op: op, Msg: fmt.Sprintf("unknown op %q", op.Type)}
	}
	c := &inferCtx{op: op, spec: spec, t: t}
	if t < spec.Since {
		return nil, c.errf("", "%s is not available in opset %v (it first appears in %v)", op.Type, t, spec.Since)
	}
	if err := c.validateArgs(); err != nil {
		return nil, err
	}
	types, err := spec.infer(c)
	if err != nil {
		return nil, err
	}
	for i, ty := range types {
		if err := checkType(ty); err != nil {
			return nil, c.errf("", "output %d: %v", i, err)
		}
	}
	return types, nil
}

// OpDefault returns the value that input takes in op when it is omitted, and
// false if the input is required, unknown, or has no value-spelled default.
// Defaults may depend on the op's other inputs (conv's strides have one entry
// per spatial axis of x), hence the operation argument.
func OpDefault(op *Operation, t Target, input string) (*Value, bool) {
	spec := specOf(op)
	if spec == nil {
		return nil, false
	}
	in := spec.Input(input)
	if in == nil || in.Required || in.Default == nil {
		return nil, false
	}
	v := in.Default(op, t)
	return v, v != nil
}

// ParamValue returns the compile-time value of a const input of op: the
// literal or const bound to it (or, for constexpr ops, the attribute), else
// its default. It returns false if the input is bound to a runtime value, to
// a blob, or is absent without a default. The emulator reads axes, perms,
// strides and flags through it, so omitted inputs behave as the checker
// assumed.
func ParamValue(op *Operation, t Target, input string) (*Value, bool) {
	spec := specOf(op)
	if spec == nil {
		return nil, false
	}
	c := &inferCtx{op: op, spec: spec, t: t}
	b, present := c.bind(input)
	if !present {
		return OpDefault(op, t, input)
	}
	v := b.ConstValue()
	if v == nil || v.Blob != nil {
		return nil, false
	}
	return v, true
}

// specOf returns the spec of op's type, or nil for a nil op or an unknown type.
func specOf(op *Operation) *OpSpec {
	if op == nil {
		return nil
	}
	return opRegistry[op.Type]
}

// checkType validates a type beyond Type.validate: bounded rank and bounded
// dimensions, so shape arithmetic in inference cannot overflow even when
// other dimensions are unknown.
func checkType(t Type) error {
	if err := t.validate(); err != nil {
		return err
	}
	if len(t.Shape) > MaxRank {
		return fmt.Errorf("rank %d exceeds the maximum %d", len(t.Shape), MaxRank)
	}
	for _, d := range t.Shape {
		if d > MaxElements {
			return fmt.Errorf("dimension %d in shape %v exceeds 2^40", d, t.Shape)
		}
	}
	return nil
}

// isConstBinding reports whether b is a compile-time constant: a literal, or
// a variable produced by const or a constexpr_* op.
func isConstBinding(b Binding) bool {
	if b.Value != nil {
		return true
	}
	if b.Var == nil {
		return false
	}
	if b.Var.Const != nil {
		return true
	}
	return b.Var.Op != nil && isConstOp(b.Var.Op.Type)
}

func isConstOp(opType string) bool {
	return opType == "const" || strings.HasPrefix(opType, "constexpr_")
}

// inferCtx carries one op through its spec's inference.
type inferCtx struct {
	op   *Operation
	spec *OpSpec
	t    Target
}

func (c *inferCtx) errf(input, format string, a ...any) error {
	return &OpError{Op: c.op, Input: input, Msg: fmt.Sprintf(format, a...)}
}

// validateArgs checks the structure of the op's arguments and attributes
// against its spec, before any inference reads them.
func (c *inferCtx) validateArgs() error {
	op, spec := c.op, c.spec
	seen := map[string]bool{}
	for i := range op.Args {
		a := &op.Args[i]
		in := spec.Input(a.Name)
		if in == nil {
			return c.errf(a.Name, "unknown input %q (%s takes %s)", a.Name, op.Type, c.inputList())
		}
		if seen[a.Name] {
			return c.errf(a.Name, "input %q given twice", a.Name)
		}
		seen[a.Name] = true
		switch {
		case in.Tuple && !a.Tuple:
			return c.errf(a.Name, "input %q must be a tuple, written %s = (a, b, …)", a.Name, a.Name)
		case !in.Tuple && a.Tuple:
			return c.errf(a.Name, "input %q takes a single value, not a tuple", a.Name)
		case len(a.Bindings) == 0:
			return c.errf(a.Name, "input %q is bound to nothing", a.Name)
		case !a.Tuple && len(a.Bindings) != 1:
			return c.errf(a.Name, "input %q has %d bindings, want 1", a.Name, len(a.Bindings))
		}
		for j, b := range a.Bindings {
			if err := c.validateBinding(a.Name, j, b, in.Const); err != nil {
				return err
			}
		}
	}
	for _, at := range op.Attrs {
		if seen["@"+at.Name] {
			return c.errf(at.Name, "attribute %q given twice", at.Name)
		}
		seen["@"+at.Name] = true
		if at.Value == nil {
			return c.errf(at.Name, "attribute %q has no value", at.Name)
		}
		if err := at.Value.Check(); err != nil {
			return c.errf(at.Name, "attribute %q: %v", at.Name, err)
		}
		if err := checkType(at.Value.Type); err != nil {
			return c.errf(at.Name, "attribute %q: %v", at.Name, err)
		}
		switch {
		case op.Type == "const" && at.Name == "val":
		case spec.ParamsAsAttrs && spec.Input(at.Name) != nil:
			if seen[at.Name] {
				return c.errf(at.Name, "parameter %q given both as an input and as an attribute", at.Name)
			}
		case at.Name == "name":
			return c.errf(at.Name, "the name attribute belongs in Operation.Name, not Attrs")
		default:
			return c.errf(at.Name, "unexpected attribute %q", at.Name)
		}
	}
	for _, in := range spec.Inputs {
		if in.Required {
			if _, ok := c.bind(in.Name); !ok {
				return c.errf(in.Name, "missing required input %q", in.Name)
			}
		}
	}
	return nil
}

func (c *inferCtx) validateBinding(name string, j int, b Binding, wantConst bool) error {
	switch {
	case b.Var == nil && b.Value == nil:
		return c.errf(name, "input %q has an empty binding", name)
	case b.Var != nil && b.Value != nil:
		return c.errf(name, "input %q binding holds both a variable and a literal", name)
	case b.Value != nil:
		if err := b.Value.Check(); err != nil {
			return c.errf(name, "input %q: %v", name, err)
		}
	}
	if err := checkType(b.Type()); err != nil {
		return c.errf(name, "input %q: %v", name, err)
	}
	if wantConst && !isConstBinding(b) {
		what := name
		if b.Var != nil {
			what = fmt.Sprintf("%s (bound to %s)", name, b.Var.Name)
		}
		return c.errf(name, "input %s must be a compile-time constant", what)
	}
	return nil
}

func (c *inferCtx) inputList() string {
	names := make([]string, len(c.spec.Inputs))
	for i, in := range c.spec.Inputs {
		names[i] = in.Name
	}
	if len(names) == 0 {
		return "no inputs"
	}
	return strings.Join(names, ", ")
}

// bind returns the single binding of an input: from the arguments, or, for
// constexpr ops, from an attribute of the same name.
func (c *inferCtx) bind(name string) (Binding, bool) {
	if a := c.op.Arg(name); a != nil && len(a.Bindings) > 0 {
		return a.Bindings[0], true
	}
	if c.spec.ParamsAsAttrs {
		if v := c.op.Attr(name); v != nil {
			return Binding{Value: v}, true
		}
	}
	return Binding{}, false
}

// input returns the type of a required input, checking its dtype against
// domain when one is given.
func (c *inferCtx) input(name string, domain ...DType) (Type, error) {
	b, ok := c.bind(name)
	if !ok {
		return Type{}, c.errf(name, "missing required input %q", name)
	}
	t := b.Type()
	if len(domain) > 0 && !slices.Contains(domain, t.DType) {
		return Type{}, c.errf(name, "%s has dtype %v; %s accepts %s", name, t.DType, c.op.Type, dtypeList(domain))
	}
	return t, nil
}

// optInput is input for an optional input; ok is false if it is absent.
func (c *inferCtx) optInput(name string, domain ...DType) (t Type, ok bool, err error) {
	if _, present := c.bind(name); !present {
		return Type{}, false, nil
	}
	t, err = c.input(name, domain...)
	return t, err == nil, err
}

// param returns the immediate value of a const input, or its default when it
// is omitted. It returns nil, nil when the input is omitted and has no default.
func (c *inferCtx) param(name string) (*Value, error) {
	b, ok := c.bind(name)
	if !ok {
		if in := c.spec.Input(name); in != nil && in.Default != nil {
			return in.Default(c.op, c.t), nil
		}
		return nil, nil
	}
	v := b.ConstValue()
	if v == nil {
		return nil, c.errf(name, "%s must be a constant with a known value", name)
	}
	if v.Blob != nil {
		return nil, c.errf(name, "%s must be an immediate value, not a BLOBFILE", name)
	}
	return v, nil
}

// ints reads a rank-1 integer const input of one of the dtypes in domain
// (int32 when empty). n is the required length, or -1 for any. ok is false if
// the input is absent without a default.
func (c *inferCtx) ints(name string, n int, domain ...DType) (vals []int, ok bool, err error) {
	v, err := c.param(name)
	if err != nil || v == nil {
		return nil, false, err
	}
	if len(domain) == 0 {
		domain = []DType{Int32}
	}
	if !slices.Contains(domain, v.Type.DType) || v.Type.Shape.Rank() != 1 {
		return nil, false, c.errf(name, "%s must be a rank-1 %s tensor, got %v", name, dtypeList(domain), v.Type)
	}
	vals, good := v.AsInts()
	if !good {
		return nil, false, c.errf(name, "%s has no integer elements", name)
	}
	if n >= 0 && len(vals) != n {
		return nil, false, c.errf(name, "%s has %d elements, want %d", name, len(vals), n)
	}
	return vals, true, nil
}

// intScalar reads a rank-0 int32 const input.
func (c *inferCtx) intScalar(name string) (x int, ok bool, err error) {
	v, err := c.param(name)
	if err != nil || v == nil {
		return 0, false, err
	}
	if v.Type.DType != Int32 || !v.Type.IsScalar() || len(v.Ints) != 1 {
		return 0, false, c.errf(name, "%s must be an int32 scalar, got %v", name, v.Type)
	}
	return int(v.Ints[0]), true, nil
}

// boolScalar reads a rank-0 bool const input.
func (c *inferCtx) boolScalar(name string) (x bool, ok bool, err error) {
	v, err := c.param(name)
	if err != nil || v == nil {
		return false, false, err
	}
	b, good := v.AsBool()
	if !good || v.Type.DType != Bool {
		return false, false, c.errf(name, "%s must be a bool scalar, got %v", name, v.Type)
	}
	return b, true, nil
}

// bools reads a rank-1 bool const input of length n.
func (c *inferCtx) bools(name string, n int) ([]bool, bool, error) {
	v, err := c.param(name)
	if err != nil || v == nil {
		return nil, false, err
	}
	if v.Type.DType != Bool || v.Type.Shape.Rank() != 1 || len(v.Bools) != v.Type.Shape[0] {
		return nil, false, c.errf(name, "%s must be a rank-1 bool tensor, got %v", name, v.Type)
	}
	if len(v.Bools) != n {
		return nil, false, c.errf(name, "%s has %d elements, want %d", name, len(v.Bools), n)
	}
	return v.Bools, true, nil
}

// str reads a string scalar const input.
func (c *inferCtx) str(name string) (string, bool, error) {
	v, err := c.param(name)
	if err != nil || v == nil {
		return "", false, err
	}
	s, good := v.AsString()
	if !good {
		return "", false, c.errf(name, "%s must be a string scalar, got %v", name, v.Type)
	}
	return s, true, nil
}

// axis normalises a possibly negative axis against rank.
func (c *inferCtx) axis(name string, a, rank int) (int, error) {
	if a < -rank || a >= rank {
		return 0, c.errf(name, "%s %d is out of range for rank %d (want %d ≤ axis < %d)", name, a, rank, -rank, rank)
	}
	if a < 0 {
		a += rank
	}
	return a, nil
}

// axisParam reads the int32 scalar const input name as an axis of rank,
// normalised.
func (c *inferCtx) axisParam(name string, rank int) (int, error) {
	a, _, err := c.intScalar(name)
	if err != nil {
		return 0, err
	}
	return c.axis(name, a, rank)
}

// axesParam reads the rank-1 int32 const input name as distinct axes of
// rank, normalised.
func (c *inferCtx) axesParam(name string, rank int) ([]int, error) {
	raw, _, err := c.ints(name, -1)
	if err != nil {
		return nil, err
	}
	return c.axes(name, raw, rank)
}

// axes normalises a list of axes against rank and refuses duplicates.
func (c *inferCtx) axes(name string, as []int, rank int) ([]int, error) {
	out := make([]int, len(as))
	seen := make([]bool, rank)
	for i, a := range as {
		n, err := c.axis(name, a, rank)
		if err != nil {
			return nil, err
		}
		if seen[n] {
			return nil, c.errf(name, "%s lists axis %d twice", name, n)
		}
		seen[n] = true
		out[i] = n
	}
	return out, nil
}

func dtypeList(ds []DType) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.String()
	}
	return strings.Join(s, "/")
}

// Broadcast returns the numpy broadcast of shapes: right-aligned, each axis
// equal or 1, the output taking the larger. An unknown dimension broadcast
// against a known size above 1 takes the known size.
func Broadcast(shapes ...Shape) (Shape, bool) {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	out := make(Shape, rank)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			o := out[off+i]
			switch {
			case d == o || d == 1:
			case o == 1:
				out[off+i] = d
			case d == UnknownDim:
				// o is known and > 1: it wins.
			case o == UnknownDim:
				out[off+i] = d
			default:
				return nil, false
			}
		}
	}
	return out, true
}

// dimsMatch reports whether two dimensions can be the same size (equal, or one
// of them unknown).
func dimsMatch(a, b int) bool { return a == b || a == UnknownDim || b == UnknownDim }

// known returns whichever of two matching dimensions is known.
func known(a, b int) int {
	if a == UnknownDim {
		return b
	}
	return a
}

func one(t Type) ([]Type, error) { return []Type{t}, nil }
