package model

// KernelFLOPs is the arithmetic of one kernel evaluation, counted as the
// emulator counts a program (and as ane.Kernel.FLOPs reports it): a matmul
// 2·M·N·K, softmax 5 per element, a reduction 1 per input element, any other
// elementwise op 1 per output element, data movement 0.
type KernelFLOPs struct {
	MatMul float64 // the matmuls
	Other  float64 // elementwise ops, softmax, reductions
}

// Total is MatMul + Other.
func (f KernelFLOPs) Total() float64 { return f.MatMul + f.Other }

// KernelFLOPs returns kernel k's FLOPs per evaluation (once per layer per
// step). With D = Dim, F = Hidden, Q = QDim, K = KVDim, S = Seq, h = Heads,
// d = HeadDim:
//
//	attn_fwd  matmul 2·S·D·(2Q + 2K) + 4·h·S²·d   other 4·Q·S + 3·K·S + 6·h·S²
//	ffn_fwd   matmul 6·D·F·S                      other 3·F·S
//	ffn_bwd   matmul 6·D·F·S                      other 9·F·S + D·S
//	attn_bwd  matmul 2·S·D·(2Q + 2K) + 10·h·S²·d  other 5·Q·S + 3·K·S + 10·h·S² + 2·D·S
//
// The attention's S² terms count the full square: the causal half is masked,
// not skipped. attn_bwd recomputes the probabilities (2·h·S²·d of its
// matmuls and 6·h·S² of the rest) rather than reading them from the forward.
// RoPE costs 6 per rotated pair, the scale 1 per query element.
func (l *Layout) KernelFLOPs(k KernelID) KernelFLOPs {
	c := l.Config
	d, f, q, kv, s := float64(c.Dim), float64(c.Hidden), float64(c.QDim()), float64(c.KVDim()), float64(c.Seq)
	heads, hd := float64(c.Heads), float64(c.HeadDim)
	proj := 2 * s * d * (2*q + 2*kv) // wq, wk, wv and wo once each
	att := 2 * heads * s * s * hd    // one [S,S]×[S,d] product over all heads
	switch k {
	case AttnFwd:
		return KernelFLOPs{MatMul: proj + 2*att, Other: 4*q*s + 3*kv*s + 6*heads*s*s}
	case FFNFwd:
		return KernelFLOPs{MatMul: 6 * d * f * s, Other: 3 * f * s}
	case FFNBwd:
		return KernelFLOPs{MatMul: 6 * d * f * s, Other: 9*f*s + d*s}
	case AttnBwd:
		return KernelFLOPs{MatMul: proj + 5*att, Other: 5*q*s + 3*kv*s + 10*heads*s*s + 2*d*s}
	}
	return KernelFLOPs{}
}

// AdamWFLOPs is the CPU arithmetic of one AdamW update per parameter: decay
// 1, first moment 3, second moment 4, the step (√v̂, +ε, ÷, ×lr/(1−β1ᵗ),
// subtract) 5.
const AdamWFLOPs = 13

// StepFLOPs is the arithmetic of one training step (one window of Seq
// tokens), split between the device and the CPU.
type StepFLOPs struct {
	// Kernel is each kernel's FLOPs per evaluation; a step evaluates each
	// once per layer.
	Kernel [NumKernels]KernelFLOPs
	// Device is Layers · Σ Kernel: everything the device computes.
	Device float64

	// The CPU's share, per step:
	Classifier   float64 // logits, their input gradient and the classifier's gradient: 3 · 2·V·D·S
	CrossEntropy float64 // softmax over the vocabulary and dlogits: 6·V·S
	WeightGrads  float64 // the dW sgemms of the layers: L · 2·S·(2·D·Q + 2·D·K + 3·D·F)
	Norms        float64 // (2L+1) RMSNorms forward (4·D·S + 3·S) and backward (10·D·S + 3·S)
	Residual     float64 // residual adds forward and backward (4·D·S per layer) and the embedding's gradient (D·S)
	CPU          float64 // the sum of the five above

	// Optimizer is one AdamW update, AdamWFLOPs per parameter; it runs once
	// per optimizer step (every accumulation steps), not every step.
	Optimizer float64

	// Model is the conventional training cost of the model, 3 × its forward
	// matmuls (the projections, the attention's two S² products over the full
	// square, the classifier): the numerator of model-FLOPs utilisation. It
	// excludes the recomputed probabilities, elementwise work and norms.
	Model float64
}

// FLOPs returns the arithmetic of one training step.
func (l *Layout) FLOPs() StepFLOPs {
	c := l.Config
	layers := float64(c.Layers)
	d, f, q, kv, s, v := float64(c.Dim), float64(c.Hidden), float64(c.QDim()), float64(c.KVDim()), float64(c.Seq), float64(c.Vocab)
	var st StepFLOPs
	for _, k := range Kernels {
		st.Kernel[k] = l.KernelFLOPs(k)
		st.Device += layers * st.Kernel[k].Total()
	}
	proj := 2 * s * (2*d*q + 2*d*kv + 3*d*f) // one layer's projections, forward
	st.Classifier = 3 * 2 * v * d * s
	st.CrossEntropy = 6 * v * s
	st.WeightGrads = layers * proj
	st.Norms = (2*layers + 1) * (14*d*s + 6*s)
	st.Residual = layers*4*d*s + d*s
	st.CPU = st.Classifier + st.CrossEntropy + st.WeightGrads + st.Norms + st.Residual
	st.Optimizer = AdamWFLOPs * float64(c.NumParams())
	st.Model = 3 * (layers*(proj+4*float64(c.Heads)*s*s*float64(c.HeadDim)) + 2*v*d*s)
	return st
}
