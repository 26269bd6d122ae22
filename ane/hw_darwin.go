//go:build darwin

package ane

// The Neural Engine backend on macOS: registration, the probe, and the
// framework's call sequence (research ane-anchor §1.4) as the engineRuntime
// that hw.go drives. Every method here runs on the device's worker thread
// inside an autorelease pool (see engineRuntime), except the surface locks.

import (
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/ebitengine/purego/objc"
	"golang.org/x/sys/unix"

	"github.com/anetop/anetop/internal/sysinfo"
)

// aneQoS is the quality of service of every compile, load, evaluate and
// unload: 21 in all the reference's training code, passed as a 32-bit
// unsigned int to the _ANEInMemoryModel methods (ane-anchor §1.2, §1.3; the
// sweep 0–63 showed no performance difference, §1.8).
const aneQoS uint32 = 21

func init() {
	Register(Backend{
		Name:     "ane",
		Priority: 100,
		Available: func() (bool, string) {
			p := ProbeEngine()
			return p.OK, p.Reason
		},
		Open: func(opts Options) (Device, error) {
			p := ProbeEngine()
			if !p.OK {
				return nil, fmt.Errorf("open device \"ane\": %w: %s", ErrNoDevice, p.Reason)
			}
			return newNeuralEngine(&darwinRT{}, p.Chip, opts), nil
		},
	})
}

var probeOnce = sync.OnceValue(probeDarwin)

// ProbeEngine loads the frameworks, classes and selectors the backend needs
// (once per process) and reports what it found.
func ProbeEngine() Probe {
	p := probeOnce()
	p.Symbols = append([]Symbol(nil), p.Symbols...)
	return p
}

// osVersion is "macOS 15.3.1 (darwin/arm64)".
func osVersion() string {
	plat := runtime.GOOS + "/" + runtime.GOARCH
	if v, err := unix.Sysctl("kern.osproductversion"); err == nil && v != "" {
		return "macOS " + v + " (" + plat + ")"
	}
	return "macOS (" + plat + ")"
}

func probeDarwin() Probe {
	p := Probe{OS: osVersion(), Chip: identifyChip(sysinfo.CPUModel(), "", 0)}
	if runtime.GOARCH != "arm64" {
		p.Reason = fmt.Sprintf("the Neural Engine needs Apple silicon; this Mac is %s/%s — use --device sim", runtime.GOOS, runtime.GOARCH)
		return p
	}
	// The probe sends messages that return autoreleased objects, so it runs
	// on one locked thread inside a pool, like the device worker.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	l := &loader{}
	libobjc := l.lib(libObjCPath, "libobjc")
	foundation := l.lib(libFoundationPath, "Foundation")
	corefoundation := l.lib(libCoreFoundationPath, "CoreFoundation")
	iosurface := l.lib(libIOSurfacePath, "IOSurface")
	anef := l.lib(libANEPath, "AppleNeuralEngine")
	if libobjc == 0 || foundation == 0 || corefoundation == 0 || iosurface == 0 {
		p.Symbols, p.Reason = l.symbols, "cannot load the system libraries: "+strings.Join(l.missing, ", ")
		return p
	}
	if anef == 0 {
		p.Symbols = l.symbols
		p.Reason = "cannot load the private AppleNeuralEngine.framework (" + libANEPath + ") on " + p.OS
		return p
	}
	if err := registerMsgSend(libobjc); err != nil {
		p.Symbols, p.Reason = l.symbols, err.Error()
		return p
	}
	l.fn(libobjc, "objc_autoreleasePoolPush", &cfn.poolPush, false)
	l.fn(libobjc, "objc_autoreleasePoolPop", &cfn.poolPop, false)
	l.fn(foundation, "NSTemporaryDirectory", &cfn.tempDir, false)
	l.fn(corefoundation, "CFRelease", &cfn.cfRelease, false)
	l.fn(iosurface, "IOSurfaceCreate", &cfn.surfaceCreate, false)
	l.fn(iosurface, "IOSurfaceLock", &cfn.surfaceLock, false)
	l.fn(iosurface, "IOSurfaceUnlock", &cfn.surfaceUnlock, false)
	l.fn(iosurface, "IOSurfaceGetBaseAddress", &cfn.surfaceBaseAddress, false)
	l.fn(iosurface, "IOSurfaceGetAllocSize", &cfn.surfaceGetAllocSize, false)
	// Optional: the probe skips the calls they guard when they are missing.
	l.fn(libobjc, "class_getClassMethod", &cfn.getClassMethod, true)
	l.fn(libobjc, "method_getTypeEncoding", &cfn.methodTypeEncoding, true)
	for i, name := range surfaceProps {
		cfn.surfacePropertyNames[i] = l.constant(iosurface, name)
	}
	if len(l.missing) > 0 {
		p.Symbols, p.Reason = l.symbols, "missing system functions or constants: "+strings.Join(l.missing, ", ")
		return p
	}
	tok := poolPush()
	defer poolPop(tok)

	for _, s := range []struct {
		p    *objc.SEL
		name string
	}{
		{&sel.alloc, "alloc"}, {&sel.init, "init"}, {&sel.retain, "retain"}, {&sel.release, "release"},
		{&sel.description, "description"}, {&sel.utf8String, "UTF8String"},
		{&sel.respondsToSelector, "respondsToSelector:"}, {&sel.instancesRespondToSelector, "instancesRespondToSelector:"},
		{&sel.isKindOfClass, "isKindOfClass:"}, {&sel.count, "count"}, {&sel.objectAtIndex, "objectAtIndex:"},
		{&sel.allKeys, "allKeys"}, {&sel.objectForKey, "objectForKey:"}, {&sel.longLongValue, "longLongValue"},
		{&sel.numberWithLongLong, "numberWithLongLong:"}, {&sel.stringWithUTF8String, "stringWithUTF8String:"},
		{&sel.dataWithBytesLength, "dataWithBytes:length:"}, {&sel.dictionary, "dictionary"},
		{&sel.dictionaryWithObjectsForKeysCount, "dictionaryWithObjects:forKeys:count:"},
		{&sel.arrayWithObjects, "arrayWithObjects:count:"},
	} {
		*s.p = selector(s.name)
	}
	cls.nsData = l.class("NSData", false)
	cls.nsDictionary = l.class("NSDictionary", false)
	cls.nsArray = l.class("NSArray", false)
	cls.nsNumber = l.class("NSNumber", false)
	cls.nsString = l.class("NSString", false)

	// The four classes of the hot path and their selectors (ane-anchor
	// §1.1, §1.2), each guarded before first use.
	const desc, model, req, surf = "_ANEInMemoryModelDescriptor", "_ANEInMemoryModel", "_ANERequest", "_ANEIOSurfaceObject"
	cls.descriptor = l.class(desc, false)
	cls.inMemoryModel = l.class(model, false)
	cls.request = l.class(req, false)
	cls.surfaceObject = l.class(surf, false)
	sel.modelWithMILText = l.classSel(cls.descriptor, desc, "modelWithMILText:weights:optionsPlist:", false)
	sel.inMemoryModelWithDescriptor = l.classSel(cls.inMemoryModel, model, "inMemoryModelWithDescriptor:", false)
	sel.hexStringIdentifier = l.instSel(cls.inMemoryModel, model, "hexStringIdentifier", false)
	sel.compileWithQoS = l.instSel(cls.inMemoryModel, model, "compileWithQoS:options:error:", false)
	sel.loadWithQoS = l.instSel(cls.inMemoryModel, model, "loadWithQoS:options:error:", false)
	sel.evaluateWithQoS = l.instSel(cls.inMemoryModel, model, "evaluateWithQoS:options:request:error:", false)
	sel.unloadWithQoS = l.instSel(cls.inMemoryModel, model, "unloadWithQoS:error:", false)
	sel.objectWithIOSurface = l.classSel(cls.surfaceObject, surf, "objectWithIOSurface:", false)
	sel.requestWithInputs = l.classSel(cls.request, req,
		"requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:", false)

	// Optional: the compiled model's I/O layout (peers.md §1.4) and the
	// chip's identity (ane-anchor §1.2, peers.md §1.4).
	sel.model = l.instSel(cls.inMemoryModel, model, "model", true)
	cls.aneModel = l.class("_ANEModel", true)
	sel.modelAttributes = l.instSel(cls.aneModel, "_ANEModel", "modelAttributes", true)
	cls.deviceInfo = l.class("_ANEDeviceInfo", true)
	sel.aneSubType = l.classSel(cls.deviceInfo, "_ANEDeviceInfo", "aneSubType", true)
	sel.numANECores = l.classSel(cls.deviceInfo, "_ANEDeviceInfo", "numANECores", true)

	p.Symbols = l.symbols
	if len(l.missing) > 0 {
		p.Reason = fmt.Sprintf("%s lacks %s, which anetop needs: Apple changed the private Neural Engine API; "+
			"please report this with the output of `anetop doctor`", p.OS, strings.Join(l.missing, ", "))
		return p
	}

	// The return types of these two are not documented, and a message
	// read under the wrong prototype can crash the process (this probe runs
	// for every --device auto), so each is sent only when the runtime's type
	// encoding of the method says what it returns (objc_types.go).
	subType, cores := "", 0
	if found(l.symbols, "+[_ANEDeviceInfo aneSubType]") {
		switch kind, _ := classMethodReturn(cls.deviceInfo, sel.aneSubType); kind {
		case retObject:
			if o := send(objc.ID(cls.deviceInfo), sel.aneSubType); o != 0 {
				subType = describe(o)
			}
		case retCString:
			subType = classCString(cls.deviceInfo, sel.aneSubType)
		}
	}
	if found(l.symbols, "+[_ANEDeviceInfo numANECores]") {
		// Only the integer's own width of the return register is read, and
		// the value is accepted only when it is a plausible core count.
		if kind, size := classMethodReturn(cls.deviceInfo, sel.numANECores); kind == retInteger {
			if n := intResult(sendU64(objc.ID(cls.deviceInfo), sel.numANECores), size); n > 0 && n <= 256 {
				cores = int(n)
			}
		}
	}
	p.Chip = identifyChip(sysinfo.CPUModel(), subType, cores)
	emptyOptions = send(send(objc.ID(cls.nsDictionary), sel.alloc), sel.init)
	tempRoot = nsTemporaryDirectory()
	if emptyOptions == 0 || tempRoot == "" {
		p.Reason = "cannot create an empty NSDictionary or read NSTemporaryDirectory()"
		return p
	}
	p.OK = true
	return p
}

// tempRoot is NSTemporaryDirectory(), the per-user $TMPDIR Foundation
// reports, under which the framework compiles models (ane-anchor §1.4 step
// 6, §1.10: ask Foundation rather than guess).
var tempRoot string

func found(syms []Symbol, name string) bool {
	for _, s := range syms {
		if s.Name == name {
			return s.Found
		}
	}
	return false
}

// darwinRT is the engineRuntime over AppleNeuralEngine.framework.
type darwinRT struct{}

func (r *darwinRT) poolPush() uintptr        { return poolPush() }
func (r *darwinRT) poolPop(t uintptr)        { poolPop(t) }
func (r *darwinRT) foreignCalls() int64      { return fcalls.Load() }
func (r *darwinRT) freeModel(m modelRef)     { release(objc.ID(m)) }
func (r *darwinRT) freeRequest(q requestRef) { release(objc.ID(q)) }

// newModel is ane-anchor §1.4 steps 3–6: the weights dictionary keyed by the
// exact BLOBFILE paths, each {"offset": @0, "data": NSData} (an empty
// dictionary, never nil: §8.11), the descriptor from the MIL text as NSData
// with optionsPlist nil, the in-memory model (retained: factories return
// autoreleased objects, §1.10), and its hexStringIdentifier.
//
// Every object that goes into a dictionary is checked for nil first:
// +[NSDictionary dictionaryWithObjects:forKeys:count:] raises on a nil key
// or value, and an Objective-C exception aborts a Go process. A weight path
// that is not valid UTF-8 is the known way to get one (stringWithUTF8String:
// returns nil); Compile refuses those before this call (weightRel), so a nil
// here is reported, not expected.
func (r *darwinRT) newModel(text []byte, weights []weightFile) (modelRef, string, string, error) {
	keys := make([]objc.ID, len(weights))
	vals := make([]objc.ID, len(weights))
	offset, data := nsString("offset"), nsString("data")
	if offset == 0 || data == 0 {
		return 0, "", "", fmt.Errorf("+[NSString stringWithUTF8String:] returned nil for a constant key")
	}
	for i, w := range weights {
		if keys[i] = nsString(w.path); keys[i] == 0 {
			return 0, "", "", fmt.Errorf("+[NSString stringWithUTF8String:] returned nil for the weight path %q "+
				"(it must be valid UTF-8 without NUL bytes)", w.path)
		}
		zero, blob := nsNumber(0), nsData(w.data)
		if zero == 0 || blob == 0 {
			return 0, "", "", fmt.Errorf("cannot create the NSNumber or NSData of weight %q", w.path)
		}
		if vals[i] = nsDict([]objc.ID{offset, data}, []objc.ID{zero, blob}); vals[i] == 0 {
			return 0, "", "", fmt.Errorf("cannot create the weight dictionary of %q", w.path)
		}
	}
	wdict := nsDict(keys, vals)
	if wdict == 0 {
		return 0, "", "", fmt.Errorf("cannot create the weights dictionary")
	}
	milData := nsData(text)
	if milData == 0 {
		return 0, "", "", fmt.Errorf("cannot create the NSData of the MIL text (%d bytes)", len(text))
	}
	fcalls.Add(1)
	desc := msg.id3(objc.ID(cls.descriptor), sel.modelWithMILText, milData, wdict, 0)
	if desc == 0 {
		return 0, "", "", fmt.Errorf("+[_ANEInMemoryModelDescriptor modelWithMILText:weights:optionsPlist:] returned nil")
	}
	m := sendID(objc.ID(cls.inMemoryModel), sel.inMemoryModelWithDescriptor, desc)
	if m == 0 {
		return 0, "", "", fmt.Errorf("+[_ANEInMemoryModel inMemoryModelWithDescriptor:] returned nil")
	}
	retain(m)
	id := goString(send(m, sel.hexStringIdentifier))
	if id == "" {
		release(m)
		return 0, "", "", fmt.Errorf("-[_ANEInMemoryModel hexStringIdentifier] returned nothing")
	}
	return modelRef(m), tempRoot, id, nil
}

// compile is -compileWithQoS:options:error: (§1.4 step 8).
func (r *darwinRT) compile(m modelRef) error {
	var e objc.ID
	fcalls.Add(1)
	if !msg.qosOpts(objc.ID(m), sel.compileWithQoS, aneQoS, emptyOptions, &e) {
		return nsError("compileWithQoS:options:error:", e)
	}
	return nil
}

// load is -loadWithQoS:options:error: (§1.4 step 9).
func (r *darwinRT) load(m modelRef) error {
	var e objc.ID
	fcalls.Add(1)
	if !msg.qosOpts(objc.ID(m), sel.loadWithQoS, aneQoS, emptyOptions, &e) {
		return nsError("loadWithQoS:options:error:", e)
	}
	return nil
}

// unload is -unloadWithQoS:error: (§1.4 step 14).
func (r *darwinRT) unload(m modelRef) error {
	var e objc.ID
	fcalls.Add(1)
	if !msg.qosErr(objc.ID(m), sel.unloadWithQoS, aneQoS, &e) {
		return nsError("unloadWithQoS:error:", e)
	}
	return nil
}

// eval is -evaluateWithQoS:options:request:error:, synchronous (§1.2). With
// the request cached this is the only message of an evaluation.
func (r *darwinRT) eval(m modelRef, q requestRef) error {
	var e objc.ID
	fcalls.Add(1)
	if !msg.qosEval(objc.ID(m), sel.evaluateWithQoS, aneQoS, emptyOptions, objc.ID(q), &e) {
		return nsError("evaluateWithQoS:options:request:error:", e)
	}
	return nil
}

// newRequest is §1.4 step 12: one _ANEIOSurfaceObject per surface, indices
// 0…n-1 as NSNumbers, weightsBuffer and perfStats nil, procedureIndex the
// NSNumber @0 (an object, not an integer); the request is retained and keeps
// the wrappers alive (§1.10).
func (r *darwinRT) newRequest(in, out []surfaceRef) (requestRef, error) {
	wrap := func(ss []surfaceRef) (objs, idx objc.ID, err error) {
		ws := make([]objc.ID, len(ss))
		is := make([]objc.ID, len(ss))
		for i, s := range ss {
			fcalls.Add(1)
			if ws[i] = msg.idPtr(objc.ID(cls.surfaceObject), sel.objectWithIOSurface, uintptr(s)); ws[i] == 0 {
				return 0, 0, fmt.Errorf("+[_ANEIOSurfaceObject objectWithIOSurface:] returned nil")
			}
			is[i] = nsNumber(int64(i))
		}
		return nsArray(ws), nsArray(is), nil
	}
	ins, inIdx, err := wrap(in)
	if err != nil {
		return 0, err
	}
	outs, outIdx, err := wrap(out)
	if err != nil {
		return 0, err
	}
	fcalls.Add(1)
	q := msg.id7(objc.ID(cls.request), sel.requestWithInputs, ins, inIdx, outs, outIdx, 0, 0, nsNumber(0))
	if q == 0 {
		return 0, fmt.Errorf("+[_ANERequest requestWithInputs:…procedureIndex:] returned nil")
	}
	return requestRef(retain(q)), nil
}

// attributes reads NetworkStatusList from the inner _ANEModel's
// modelAttributes (peers.md §1.4), where the framework offers it.
func (r *darwinRT) attributes(m modelRef) (any, bool) {
	if sel.model == 0 || !objResponds(objc.ID(m), sel.model) {
		return nil, false
	}
	inner := send(objc.ID(m), sel.model)
	if inner == 0 || !objResponds(inner, sel.modelAttributes) {
		return nil, false
	}
	attrs := send(inner, sel.modelAttributes)
	if attrs == 0 || !isKind(attrs, cls.nsDictionary) {
		return nil, false
	}
	out := map[string]any{}
	if nsl := sendID(attrs, sel.objectForKey, nsString("NetworkStatusList")); nsl != 0 {
		out["NetworkStatusList"] = toGo(nsl, 0)
	}
	return out, true
}
