package mil

import (
	"fmt"
	"slices"
)

// Check verifies a whole program: a version the Neural Engine takes (1.0 or
// 1.3), at least one function, unique function names, and each function's
// Check. The emulator runs it on every parsed program, so it never panics,
// whatever p holds.
func (p *Program) Check() error {
	if p == nil {
		return fmt.Errorf("nil program")
	}
	if _, _, ok := parseVersion(p.Version); !ok {
		return fmt.Errorf("program version %q is not a number like 1.0 or 1.3", p.Version)
	}
	if !knownProgramVersion(p.Version) {
		return fmt.Errorf("unsupported program version %s: %s", p.Version, programVersionsHint)
	}
	if len(p.Functions) == 0 {
		return fmt.Errorf("program has no functions")
	}
	seen := map[string]bool{}
	for i, f := range p.Functions {
		if f == nil {
			return fmt.Errorf("function %d is nil", i)
		}
		if seen[f.Name] {
			return fmt.Errorf("function %q is defined twice", f.Name)
		}
		seen[f.Name] = true
		if err := f.Check(); err != nil {
			return fmt.Errorf("func %s: %w", f.Name, err)
		}
	}
	return nil
}

// Check verifies a function: a known opset; valid, unique names; SSA form
// (every variable defined once, every use after its definition, outputs
// defined); well-formed literals; every op known and available in the opset;
// and every op's declared output types equal to the inferred ones. Errors name
// the op and its position when the program was parsed.
func (f *Function) Check() error {
	if f == nil {
		return fmt.Errorf("nil function")
	}
	if !ValidName(f.Name) {
		return fmt.Errorf("invalid function name %q", f.Name)
	}
	t, ok := ParseTarget(f.Opset)
	if !ok {
		return fmt.Errorf("unknown opset %q (want ios15, ios16, ios17 or ios18)", f.Opset)
	}

	// Every name defined anywhere, so a use before its definition can be told
	// from a use of a name that does not exist.
	later := map[string]bool{}
	for _, op := range f.Ops {
		if op == nil {
			continue
		}
		for _, v := range op.Outputs {
			if v != nil {
				later[v.Name] = true
			}
		}
	}

	defined := map[*Var]bool{}
	names := map[string]bool{}
	define := func(v *Var, where string) error {
		if v == nil {
			return fmt.Errorf("%s: nil variable", where)
		}
		if !ValidName(v.Name) {
			return fmt.Errorf("%s: invalid variable name %q (want [A-Za-z_][A-Za-z0-9_@]*, not a dtype or keyword)", where, v.Name)
		}
		if names[v.Name] {
			return fmt.Errorf("%s: variable %s is defined twice", where, v.Name)
		}
		if err := checkType(v.Type); err != nil {
			return fmt.Errorf("%s: variable %s: %v", where, v.Name, err)
		}
		names[v.Name] = true
		defined[v] = true
		return nil
	}

	for i, in := range f.Inputs {
		where := fmt.Sprintf("input %d", i)
		if err := define(in, where); err != nil {
			return err
		}
		if in.Op != nil || in.Const != nil {
			return fmt.Errorf("%s: input %s claims to be produced by an op", where, in.Name)
		}
	}

	opNames := map[string]bool{}
	for i, op := range f.Ops {
		if op == nil {
			return fmt.Errorf("statement %d is nil", i)
		}
		if op.Name != "" {
			if opNames[op.Name] {
				return &OpError{Op: op, Msg: fmt.Sprintf("op name %q is used twice", op.Name)}
			}
			opNames[op.Name] = true
		}
		for _, a := range op.Args {
			for _, b := range a.Bindings {
				if b.Var == nil || defined[b.Var] {
					continue
				}
				switch {
				case names[b.Var.Name]:
					return &OpError{Op: op, Msg: fmt.Sprintf("input %s refers to a variable %s that is not the one this function defines", a.Name, b.Var.Name)}
				case later[b.Var.Name]:
					return &OpError{Op: op, Msg: fmt.Sprintf("input %s uses %s before its definition", a.Name, b.Var.Name)}
				default:
					return &OpError{Op: op, Msg: fmt.Sprintf("input %s uses undefined variable %s", a.Name, b.Var.Name)}
				}
			}
		}
		inferred, err := InferTypes(op, t)
		if err != nil {
			return err
		}
		if len(op.Outputs) != len(inferred) {
			return &OpError{Op: op, Msg: fmt.Sprintf("declares %d outputs, the op produces %d", len(op.Outputs), len(inferred))}
		}
		for j, out := range op.Outputs {
			if err := define(out, op.Where()); err != nil {
				return err
			}
			if out.Op != op {
				return &OpError{Op: op, Msg: fmt.Sprintf("output %s does not point back at its op", out.Name)}
			}
			if !typeMatches(out.Type, inferred[j]) {
				return &OpError{Op: op, Msg: fmt.Sprintf("output %s is declared %v but the op produces %v", out.Name, out.Type, inferred[j])}
			}
			if err := checkConstVar(op, out); err != nil {
				return err
			}
		}
	}

	for i, out := range f.Outputs {
		switch {
		case out == nil:
			return fmt.Errorf("output %d is nil", i)
		case !defined[out] && names[out.Name]:
			return fmt.Errorf("output %s is not the variable this function defines under that name", out.Name)
		case !defined[out]:
			return fmt.Errorf("output %s is not defined", out.Name)
		}
	}
	return nil
}

// checkConstVar makes sure Var.Const, which inference trusts as the value of a
// variable, is set exactly on const outputs and equals their val attribute.
func checkConstVar(op *Operation, out *Var) error {
	if op.Type != "const" {
		if out.Const != nil {
			return &OpError{Op: op, Msg: fmt.Sprintf("output %s carries a constant value but is not produced by const", out.Name)}
		}
		return nil
	}
	val := op.Attr("val")
	if out.Const == nil || !sameValue(out.Const, val) {
		return &OpError{Op: op, Msg: fmt.Sprintf("output %s does not carry the const's val", out.Name)}
	}
	return nil
}

// typeMatches reports whether a declared type agrees with an inferred one. An
// unknown inferred dimension accepts any declared size, since a declaration
// may be more precise than inference; the reverse is a mismatch.
func typeMatches(declared, inferred Type) bool {
	if declared.DType != inferred.DType || len(declared.Shape) != len(inferred.Shape) {
		return false
	}
	for i, d := range declared.Shape {
		if inferred.Shape[i] != UnknownDim && d != inferred.Shape[i] {
			return false
		}
	}
	return true
}

// sameValue reports whether two literals are identical.
func sameValue(a, b *Value) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || !a.Type.Equal(b.Type) {
		return false
	}
	if (a.Blob == nil) != (b.Blob == nil) || (a.Blob != nil && *a.Blob != *b.Blob) {
		return false
	}
	return slices.EqualFunc(a.Floats, b.Floats, func(x, y float64) bool { return x == y || (x != x && y != y) }) &&
		slices.Equal(a.Ints, b.Ints) && slices.Equal(a.Bools, b.Bools) && slices.Equal(a.Strings, b.Strings)
}
