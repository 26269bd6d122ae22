package ane

import "github.com/anetop/anetop/mil"

// ProgramFLOPs counts the arithmetic of one evaluation of a type-checked
// function, with the emulator's rules (ane/sim package doc), so that FLOP/s
// figures agree between the devices: matmul and conv 2·M·N·K (conv:
// 2·N·C_out·H_out·W_out·C_in/groups·k_h·k_w), scaled_dot_product_attention its
// two matmuls plus 5 per score, softmax 5 per element, reductions 1 per input
// element, other compute ops 1 per output element, data movement, casts and
// constants 0.
func ProgramFLOPs(fn *mil.Function) float64 {
	if fn == nil {
		return 0
	}
	total := 0.0
	for _, op := range fn.Ops {
		total += opFLOPs(op)
	}
	return total
}

// freeOps move or produce data without arithmetic; constexpr ops run at
// compile time.
var freeOps = map[string]bool{
	"const": true, "reshape": true, "transpose": true, "slice_by_index": true, "slice_by_size": true,
	"concat": true, "split": true, "expand_dims": true, "squeeze": true, "cast": true,
	"constexpr_affine_dequantize": true,
}

func opFLOPs(op *mil.Operation) float64 {
	if op == nil || len(op.Outputs) == 0 || op.Outputs[0] == nil || freeOps[op.Type] {
		return 0
	}
	out := float64(elems(op.Outputs[0].Type.Shape))
	switch op.Type {
	case "matmul":
		x := opVar(op, "x")
		if x == nil || len(x.Type.Shape) == 0 {
			return 0
		}
		s := x.Type.Shape
		k := s[len(s)-1]
		if opBool(op, "transpose_x") && len(s) >= 2 {
			k = s[len(s)-2]
		}
		return 2 * out * float64(k)
	case "conv":
		w := opVar(op, "weight")
		if w == nil || len(w.Type.Shape) == 0 || w.Type.Shape[0] <= 0 {
			return 0
		}
		// weight is [C_out, C_in/groups, k…]: each output element takes
		// C_in/groups·Πk products.
		return 2 * out * float64(elems(w.Type.Shape)/w.Type.Shape[0])
	case "scaled_dot_product_attention":
		q, k, v := opVar(op, "query"), opVar(op, "key"), opVar(op, "value")
		if q == nil || k == nil || v == nil || len(q.Type.Shape) < 2 || len(k.Type.Shape) < 2 || len(v.Type.Shape) < 1 {
			return 0
		}
		qs, ks, vs := q.Type.Shape, k.Type.Shape, v.Type.Shape
		l, e := float64(qs[len(qs)-2]), float64(qs[len(qs)-1])
		s, ev := float64(ks[len(ks)-2]), float64(vs[len(vs)-1])
		if l == 0 || ev == 0 {
			return 0
		}
		nb := out / (l * ev)
		return nb * (2*l*s*e + 2*l*s*ev + 5*l*s)
	case "softmax":
		return 5 * out
	case "reduce_sum", "reduce_mean", "reduce_max":
		if x := opVar(op, "x"); x != nil {
			return float64(elems(x.Type.Shape))
		}
		return 0
	}
	return out
}

func elems(s mil.Shape) int {
	n := 1
	for _, d := range s {
		if d < 0 {
			return 0
		}
		n *= d
	}
	return n
}

// opVar returns the variable bound to an op's input, or nil.
func opVar(op *mil.Operation, name string) *mil.Var {
	for _, a := range op.Args {
		if a.Name == name && len(a.Bindings) == 1 {
			return a.Bindings[0].Var
		}
	}
	return nil
}

// opBool reads a boolean parameter given inline or through a const; false
// when absent (the MIL default of matmul's transpose flags).
func opBool(op *mil.Operation, name string) bool {
	for _, a := range op.Args {
		if a.Name != name || len(a.Bindings) != 1 {
			continue
		}
		v := a.Bindings[0].Value
		if v == nil && a.Bindings[0].Var != nil {
			v = a.Bindings[0].Var.Const
		}
		return v != nil && len(v.Bools) == 1 && v.Bools[0]
	}
	return false
}
