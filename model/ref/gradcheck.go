package ref

import (
	"math/rand/v2"

	"github.com/anetop/anetop/model"
)

// GradCheckCase returns parameters and one batch for a gradient check of
// config c: initialised from seed 11, matrices scaled by 4 and norm gains
// drawn around 1, so every path carries a visible gradient (at plain init
// the norms are all 1 and some gradients are too small to compare), plus
// Seq random inputs and targets. Model and engine tests check against the
// same case.
func GradCheckCase(c model.Config) (p *model.Params, inputs, targets []int, err error) {
	p, err = model.NewParams(c)
	if err != nil {
		return nil, nil, nil, err
	}
	p.Init(11)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tn := range p.Tensors {
		for i := tn.Offset; i < tn.Offset+tn.Size; i++ {
			if tn.Kind.Matrix() {
				p.Data[i] *= 4
			} else {
				p.Data[i] = float32(1 + 0.1*rng.NormFloat64())
			}
		}
	}
	inputs, targets = make([]int, c.Seq), make([]int, c.Seq)
	for i := range inputs {
		inputs[i], targets[i] = rng.IntN(c.Vocab), rng.IntN(c.Vocab)
	}
	return p, inputs, targets, nil
}
