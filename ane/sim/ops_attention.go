package sim

import (
	"math"
	"slices"

	"github.com/anetop/anetop/blas"
	"github.com/anetop/anetop/mil"
)

func init() {
	ops["scaled_dot_product_attention"] = planSDPA
}

// planSDPA computes softmax(Q·Kᵀ/√E)·V. attn_mask is type-checked and then
// IGNORED, as the ANE ignores it (ane-anchor §8.1): a causal kernel must
// build scores with matmul, add the mask and call softmax itself.
func planSDPA(p *planner) error {
	rd := p.reader()
	q, k, v := rd.need("query"), rd.need("key"), rd.need("value")
	if rd.err != nil {
		return rd.err
	}
	dt := q.typ.DType
	if !isFloat16or32(dt) || k.typ.DType != dt || v.typ.DType != dt {
		return invalid("query, key and value must share dtype fp16 or fp32: %v, %v, %v", q.typ, k.typ, v.typ)
	}
	qs, ks, vs := q.typ.Shape, k.typ.Shape, v.typ.Shape
	r := len(qs)
	if r < 3 || len(ks) != r || len(vs) != r {
		return invalid("query %v, key %v and value %v must have the same rank ≥ 3", q.typ, k.typ, v.typ)
	}
	if !slices.Equal(qs[:r-2], ks[:r-2]) || !slices.Equal(qs[:r-2], vs[:r-2]) {
		return invalid("query %v, key %v and value %v must have equal batch dimensions", q.typ, k.typ, v.typ)
	}
	L, E, S, EV := qs[r-2], qs[r-1], ks[r-2], vs[r-1]
	if ks[r-1] != E || vs[r-2] != S {
		return invalid("key %v must be [..., S, %d] and value %v [..., S, EV] with key's S", k.typ, E, v.typ)
	}
	if m, err := p.arg("attn_mask"); err != nil {
		return err
	} else if m != nil {
		if m.typ.DType != mil.Bool && !isFloat16or32(m.typ.DType) {
			return invalid("attn_mask must be bool, fp16 or fp32, found %v", m.typ)
		}
		if _, err := broadcastShapes(m.typ.Shape, append(slices.Clone([]int(qs[:r-1])), S)); err != nil {
			return invalid("attn_mask %v does not broadcast to the scores: %v", m.typ, err)
		}
		// Deliberately unused: the hardware ignores the mask.
	}
	bshape := slices.Clone([]int(qs[:r-2]))
	qv, kv, vv := rd.data(q), rd.data(k), rd.data(v)
	qo, ko, vo := rd.operand(qv, bshape), rd.operand(kv, bshape), rd.operand(vv, bshape)
	if rd.err != nil {
		return rd.err
	}
	nb := numel(bshape)
	if L*S > maxArenaElems/max(nb, 1) {
		return unsupported("attention scores of %d×%d×%d exceed the emulator's arena", nb, L, S)
	}
	sc, err := p.newBuf(nb * L * S)
	if err != nil {
		return err
	}
	outShape := append(slices.Clone(bshape), L, EV)
	ob, err := p.newBuf(numel(outShape))
	if err != nil {
		return err
	}
	alpha := float32(1 / math.Sqrt(float64(E)))
	run := func() {
		s, o := sc.data, ob.data
		for b := range nb {
			sb := s[b*L*S : (b+1)*L*S]
			if E == 0 {
				clear(sb)
			} else {
				// scores = Q·Kᵀ/√E: K's logical [S, E] read transposed.
				blas.Sgemm(qo.trans, !ko.trans, L, S, E, alpha, qo.v.buf.data[qo.offs[b]:], qo.ld,
					ko.v.buf.data[ko.offs[b]:], ko.ld, 0, sb, max(S, 1))
			}
		}
		// The scores and the probabilities are fp16 tensors on the device.
		round16(s)
		softmaxRows(s, s, nb*L, S)
		for b := range nb {
			if S == 0 {
				clear(o[b*L*EV : (b+1)*L*EV])
				continue
			}
			blas.Sgemm(false, vo.trans, L, EV, S, 1, s[b*L*S:], max(S, 1),
				vo.v.buf.data[vo.offs[b]:], vo.ld, 0, o[b*L*EV:], max(EV, 1))
		}
		round16(o)
	}
	flops := float64(nb) * (2*float64(L)*float64(S)*float64(E) + 2*float64(L)*float64(S)*float64(EV) + 5*float64(L)*float64(S))
	p.emit(run, flops, []view{qo.v, ko.v, vo.v}, ob, sc)
	return p.out(0, denseView(ob, outShape), dt)
}
