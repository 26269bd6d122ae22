package mil

import "testing"

// TestInferFirstErrorWins pins the order in which inference reports faults
// when an op has several: the argReader skips the reads after a failed one,
// so the first input read (and tested) is the one named.
func TestInferFirstErrorWins(t *testing.T) {
	runInfer(t, []inferCase{
		{name: "binary x before y", op: mkOp("add", va("x", rv("x", Bool, 2)), va("y", rv("y", Bool, 2))), errSub: "x has dtype bool", errIn: "x"},
		{name: "select cond before a", op: mkOp("select", va("cond", rv("c", FP16, 2)), va("a", rv("a", String)), va("b", rv("b", FP16, 2))), errSub: "cond has dtype fp16", errIn: "cond"},
		{name: "matmul dtypes before flags", target: IOS16, op: mkOp("matmul", va("x", rv("x", FP16, 2, 2)), va("y", rv("y", FP32, 2, 2)), ca("transpose_x", i32(1))), errSub: "before ios17", errIn: "y"},
		{name: "matmul transpose_x before transpose_y", op: mkOp("matmul", va("x", rv("x", FP16, 2, 2)), va("y", rv("y", FP16, 2, 2)), ca("transpose_x", i32(1)), ca("transpose_y", i32(1))), errSub: "transpose_x must be a bool scalar", errIn: "transpose_x"},
		{name: "conv strides before dilations", op: mkOp("conv", va("x", rv("x", FP16, 1, 2, 4, 4)), va("weight", rv("w", FP16, 3, 2, 1, 1)), ca("strides", Int32s(1)), ca("dilations", Int32s(1))), errSub: "strides has 1 elements, want 2", errIn: "strides"},
		{name: "slice begin before end", op: mkOp("slice_by_index", va("x", rv("x", FP16, 4)), ca("begin", Int32s(0, 0)), ca("end", Int32s(1, 1))), errSub: "begin has 2 elements, want 1", errIn: "begin"},
		{name: "slice end before masks", op: mkOp("slice_by_index", va("x", rv("x", FP16, 4)), ca("begin", Int32s(0)), ca("end", Int32s(1, 1)), ca("begin_mask", Bools(false, false))), errSub: "end has 2 elements, want 1", errIn: "end"},
		{name: "dequantize rank before scale", op: mkOp("dequantize", va("input", rv("q", Int8)), ca("scale", i32(1))), errSub: "input must have rank ≥ 1", errIn: "input"},
		{name: "sdpa query before key", op: mkOp("scaled_dot_product_attention", va("query", rv("q", Int32, 1, 2, 2)), va("key", rv("k", Int32, 1, 2, 2)), va("value", rv("v", FP16, 1, 2, 2))), errSub: "query has dtype int32", errIn: "query"},
	})
}
