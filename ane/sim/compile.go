package sim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/anetop/anetop/ane"
	"github.com/anetop/anetop/mil"
)

// MaxAxis is the largest size of a tensor axis the emulator accepts, a cap
// other projects report for the ANE (research ane-anchor §8.20: "a 16384 cap
// per tensor axis"). The channel axis (axis 1) of rank-4 tensors and the
// output-channel axis of conv weights are exempt, because kernels with 32000
// channels there are known to compile and run (§8.7: a classifier conv with
// 32000 output channels, a softmax over 32000 channels).
const MaxAxis = 16384

// MaxConvInputChannels is the largest conv input width (channels per group)
// the emulator accepts. A conv with 32000 input channels is rejected by the
// hardware while 32000 output channels work (§8.7); the exact threshold is
// unknown, so the emulator uses the axis cap, MaxAxis.
const MaxConvInputChannels = MaxAxis

// controlFlow lists MIL ops with nested blocks, which the ANE does not run
// (mil-spec §4.15).
var controlFlow = map[string]bool{"cond": true, "while_loop": true}

type opPlanner func(p *planner) error

// ops maps each implemented MIL op to its planner; filled by the ops_*.go files.
var ops = map[string]opPlanner{}

// compileProgram parses text (the exact text the ANE compiler would get),
// type-checks it, applies the hardware's rules and plans its execution.
func compileProgram(name string, text []byte, w mil.Weights, opts ane.Options) (*plan, error) {
	prog, err := mil.Parse(name, text)
	if err != nil {
		return nil, fmt.Errorf("%w (%w)", err, ane.ErrInvalidProgram)
	}
	p := &planner{kernel: name, w: w, multi: opts.MultiIO,
		vals: map[*mil.Var]*tval{}, uses: map[*mil.Var][]*mil.Operation{}, outs: map[*mil.Var]bool{}}
	// The hardware's structural rules come first, so an op the device cannot
	// run is reported as unsupported rather than as a type error.
	if err := p.rules(prog); err != nil {
		return nil, err
	}
	if err := prog.Check(); err != nil {
		var oe *mil.OpError
		if errors.As(err, &oe) && oe.Op != nil {
			return nil, &CompileError{Kernel: name, Pos: oe.Op.Pos, Op: oe.Op.Type, OpName: oe.Op.Name,
				Msg: oe.Msg, Kind: ane.ErrInvalidProgram}
		}
		return nil, &CompileError{Kernel: name, Msg: err.Error(), Kind: ane.ErrInvalidProgram}
	}
	return p.program()
}

func progErr(kernel string, kind error, format string, args ...any) error {
	return &CompileError{Kernel: kernel, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// rules applies the hardware's structural rules (see the package doc).
func (p *planner) rules(prog *mil.Program) error {
	fn := prog.Main()
	if fn == nil {
		return progErr(p.kernel, ane.ErrInvalidProgram, "the program has no function named main; ANE kernels run main")
	}
	p.fn = fn
	for _, f := range prog.Functions {
		if f != fn {
			return &CompileError{Kernel: p.kernel, Pos: f.Pos, Kind: ane.ErrUnsupported,
				Msg: fmt.Sprintf("function %q: a kernel has exactly one function, main", f.Name)}
		}
	}
	op, ok := strings.CutPrefix(fn.Opset, "ios")
	p.opset, _ = strconv.Atoi(op)
	if !ok || p.opset < 15 || p.opset > 18 {
		return p.fail(nil, unsupported("opset %q: the emulator runs ios15 to ios18", fn.Opset))
	}
	// One input and one output (ane-anchor §8.5).
	if !p.multi && (len(fn.Inputs) != 1 || len(fn.Outputs) != 1) {
		return p.fail(nil, unsupported("main has %s and %s; the ANE is only reliable with one "+
			"input and one output (pack tensors along the spatial or channel axis and slice inside the kernel), "+
			"or open the device with Options.MultiIO", plural(len(fn.Inputs), "input"), plural(len(fn.Outputs), "output")))
	}
	if len(fn.Inputs) == 0 || len(fn.Outputs) == 0 {
		return p.fail(nil, invalid("main needs at least one input and one output"))
	}
	for _, v := range fn.Inputs {
		if err := p.ioType("input", v); err != nil {
			return err
		}
	}
	for _, v := range fn.Outputs {
		if v == nil {
			return p.fail(nil, invalid("nil output"))
		}
		if err := p.ioType("output", v); err != nil {
			return err
		}
	}
	for _, op := range fn.Ops {
		if op == nil {
			return p.fail(nil, invalid("nil operation"))
		}
		if controlFlow[op.Type] {
			return p.fail(op, unsupported("control flow does not run on the ANE"))
		}
		if ops[op.Type] == nil {
			return p.fail(op, unsupported("the emulator does not implement op %q", op.Type))
		}
	}
	return nil
}

func (p *planner) program() (*plan, error) {
	fn := p.fn
	for _, v := range fn.Outputs {
		p.outs[v] = true
	}
	for _, op := range fn.Ops {
		for _, a := range op.Args {
			for _, b := range a.Bindings {
				if b.Var != nil {
					p.uses[b.Var] = append(p.uses[b.Var], op)
				}
			}
		}
	}
	// Every value's type: static shapes within the axis cap.
	for _, v := range fn.Inputs {
		if err := p.checkType(nil, v); err != nil {
			return nil, err
		}
	}
	for _, op := range fn.Ops {
		for _, v := range op.Outputs {
			if err := p.checkType(op, v); err != nil {
				return nil, err
			}
		}
	}
	// Inputs live in buffers filled from the surfaces before the first step.
	for _, v := range fn.Inputs {
		b, err := p.newBuf(v.Type.Shape.NumElements())
		if err != nil {
			return nil, p.fail(nil, err)
		}
		b.first = -1
		p.vals[v] = &tval{typ: v.Type, v: denseView(b, v.Type.Shape)}
	}
	for _, op := range fn.Ops {
		p.op = op
		if err := ops[op.Type](p); err != nil {
			var ce *CompileError
			if errors.As(err, &ce) {
				return nil, err
			}
			return nil, p.fail(op, err)
		}
		for _, v := range op.Outputs {
			if p.vals[v] == nil {
				return nil, p.fail(op, invalid("output %s was not produced", v.Name))
			}
		}
	}
	p.op = nil
	pl := &plan{name: p.kernel, fn: fn}
	for _, v := range fn.Outputs {
		tv := p.vals[v]
		d, err := p.data(tv)
		if err != nil {
			return nil, p.fail(nil, err)
		}
		if !d.dense() {
			if d, err = p.copyDense(d); err != nil {
				return nil, p.fail(nil, err)
			}
		}
		if !d.buf.konst {
			d.buf.last = len(p.steps) + 1 // outputs stay live after the last step
		}
		pl.outputs = append(pl.outputs, d)
	}
	for _, v := range fn.Inputs {
		pl.inputs = append(pl.inputs, p.vals[v].v)
	}
	if err := p.allocate(); err != nil {
		return nil, err
	}
	pl.steps = p.steps
	pl.arena = p.arena
	pl.bind = p.bind
	for _, s := range p.steps {
		pl.flops += s.flops
	}
	for _, v := range fn.Inputs {
		pl.inTypes = append(pl.inTypes, v.Type)
	}
	for _, v := range fn.Outputs {
		pl.outTypes = append(pl.outTypes, v.Type)
	}
	return pl, nil
}

// ioType applies the rules for kernel inputs and outputs: fp16 tensors
// (mil-spec §6.4, ane-anchor §8.10: fp32 I/O fails on some chips and cast is
// unsupported on M1/M2), static shapes of rank ≥ 1.
func (p *planner) ioType(what string, v *mil.Var) error {
	if v.Type.DType != mil.FP16 {
		return p.fail(nil, unsupported("%s %s is %v: kernel inputs and outputs must be fp16 tensors; "+
			"cast inside the kernel", what, v.Name, v.Type))
	}
	if v.Type.IsScalar() {
		return p.fail(nil, unsupported("%s %s is a scalar: kernel inputs and outputs must be tensors", what, v.Name))
	}
	return nil
}

// checkType refuses dynamic shapes and axes beyond MaxAxis.
func (p *planner) checkType(op *mil.Operation, v *mil.Var) error {
	t := v.Type
	if !t.Shape.Static() {
		return p.fail(op, unsupported("%s has type %v: the ANE runs static shapes only", v.Name, t))
	}
	if t.Shape.NumElements() == 0 && (op == nil || op.Type != "const") {
		return p.fail(op, unsupported("%s has type %v: empty tensors do not run on the ANE", v.Name, t))
	}
	if t.Shape.NumElements() < 0 || t.Shape.NumElements() > maxArenaElems {
		return p.fail(op, unsupported("%s has type %v, beyond the emulator's %d MiB arena", v.Name, t, MaxArenaBytes>>20))
	}
	weightOnly := op != nil && len(p.uses[v]) > 0
	for _, u := range p.uses[v] {
		if u.Type != "conv" || u.Input("weight") != v {
			weightOnly = false
		}
	}
	for i, d := range t.Shape {
		if d <= MaxAxis || (len(t.Shape) == 4 && i == 1) || (weightOnly && i == 0) {
			continue
		}
		return p.fail(op, unsupported("%s has type %v: axis %d has %d elements, more than the ANE's %d per axis "+
			"(only the channel axis of a rank-4 tensor may be larger); split the tensor", v.Name, t, i, d, MaxAxis))
	}
	return nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
