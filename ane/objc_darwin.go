//go:build darwin

package ane

// The Objective-C and C functions the Neural Engine backend calls, each
// registered once with purego and counted on every call. Nothing here knows
// the ANE's call sequence; hw_darwin.go does, and hw.go above it.
//
// Facts used (research go-ecosystem.md §1, ane-anchor.md §1.10):
//   - With CGO_ENABLED=0 no framework is linked: Foundation, CoreFoundation,
//     IOSurface and the private framework are dlopened here before any class
//     is looked up (go-ecosystem §1.1, §1.6 for the paths).
//   - objc_msgSend is registered once per C prototype with
//     purego.RegisterFunc, because objc.Send registers a function on every
//     call and ID.Send boxes its arguments (go-ecosystem §1.3).
//   - BOOL returns are declared bool (arm64 BOOL is C bool, only the low byte
//     is defined); unsigned int is uint32, NSUInteger uint64 (§1.4).
//   - CFString constants are pointer globals: dlsym gives the variable's
//     address, dereferenced once (§1.6).
//   - Autorelease pools through objc_autoreleasePoolPush/Pop (§1.5 (b)).

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/ebitengine/purego/objc"
)

const (
	libObjCPath           = "/usr/lib/libobjc.A.dylib"
	libFoundationPath     = "/System/Library/Frameworks/Foundation.framework/Foundation"
	libCoreFoundationPath = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
	libIOSurfacePath      = "/System/Library/Frameworks/IOSurface.framework/IOSurface"
	libANEPath            = "/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine"
)

// fcalls counts every crossing from Go into C or Objective-C made by this
// package (NeuralEngine.ForeignCalls).
var fcalls atomic.Int64

// msg is objc_msgSend under each prototype the backend needs.
var msg struct {
	id      func(self objc.ID, cmd objc.SEL) objc.ID
	void    func(self objc.ID, cmd objc.SEL)
	u64     func(self objc.ID, cmd objc.SEL) uint64
	i64     func(self objc.ID, cmd objc.SEL) int64
	cstr    func(self objc.ID, cmd objc.SEL) string
	respond func(self objc.ID, cmd objc.SEL, s objc.SEL) bool
	isKind  func(self objc.ID, cmd objc.SEL, cls objc.Class) bool
	idID    func(self objc.ID, cmd objc.SEL, a objc.ID) objc.ID
	idPtr   func(self objc.ID, cmd objc.SEL, p uintptr) objc.ID
	idU64   func(self objc.ID, cmd objc.SEL, i uint64) objc.ID
	idI64   func(self objc.ID, cmd objc.SEL, v int64) objc.ID
	idStr   func(self objc.ID, cmd objc.SEL, s string) objc.ID
	idBytes func(self objc.ID, cmd objc.SEL, p unsafe.Pointer, n uint64) objc.ID
	idArr   func(self objc.ID, cmd objc.SEL, objs *objc.ID, n uint64) objc.ID
	idDict  func(self objc.ID, cmd objc.SEL, objs, keys *objc.ID, n uint64) objc.ID
	id3     func(self objc.ID, cmd objc.SEL, a, b, c objc.ID) objc.ID
	// seven object arguments after self and _cmd: the ninth integer argument
	// goes on the stack, which purego packs by natural size on darwin/arm64
	// (go-ecosystem §1.4).
	id7 func(self objc.ID, cmd objc.SEL, a, b, c, d, e, f, g objc.ID) objc.ID
	// -compileWithQoS:options:error:, -loadWithQoS:options:error:
	qosOpts func(self objc.ID, cmd objc.SEL, qos uint32, opts objc.ID, nserr *objc.ID) bool
	// -evaluateWithQoS:options:request:error:
	qosEval func(self objc.ID, cmd objc.SEL, qos uint32, opts, req objc.ID, nserr *objc.ID) bool
	// -unloadWithQoS:error:
	qosErr func(self objc.ID, cmd objc.SEL, qos uint32, nserr *objc.ID) bool
}

// cfn are the C functions.
var cfn struct {
	poolPush             func() uintptr
	poolPop              func(token uintptr)
	tempDir              func() objc.ID // NSTemporaryDirectory()
	cfRelease            func(cf uintptr)
	surfaceCreate        func(props objc.ID) uintptr
	surfaceLock          func(s uintptr, opts uint32, seed *uint32) int32
	surfaceUnlock        func(s uintptr, opts uint32, seed *uint32) int32
	surfaceBaseAddress   func(s uintptr) unsafe.Pointer
	surfaceGetAllocSize  func(s uintptr) uint64
	surfacePropertyNames [6]objc.ID // kIOSurfaceWidth … kIOSurfacePixelFormat, in surfaceProps order

	// Optional (nil when libobjc lacks them): the runtime's own record of
	// a method's types, read before sending a message whose return type is
	// undocumented (+[_ANEDeviceInfo aneSubType], numANECores).
	getClassMethod     func(c objc.Class, s objc.SEL) uintptr // class_getClassMethod
	methodTypeEncoding func(m uintptr) string                 // method_getTypeEncoding; NULL reads as ""
}

// surfaceProps are the IOSurface property keys the reference sets, in order
// (ane-anchor §1.5); newSurface gives their values in the same order.
var surfaceProps = [6]string{
	"kIOSurfaceWidth", "kIOSurfaceHeight", "kIOSurfaceBytesPerElement",
	"kIOSurfaceBytesPerRow", "kIOSurfaceAllocSize", "kIOSurfacePixelFormat",
}

// sel are the selectors, registered once (objc.RegisterName takes the
// runtime's lock, go-ecosystem §1.1).
var sel struct {
	alloc, init, retain, release, description, utf8String objc.SEL
	respondsToSelector, instancesRespondToSelector        objc.SEL
	isKindOfClass, count, objectAtIndex, allKeys          objc.SEL
	objectForKey, longLongValue, numberWithLongLong       objc.SEL
	stringWithUTF8String, dataWithBytesLength, dictionary objc.SEL
	dictionaryWithObjectsForKeysCount, arrayWithObjects   objc.SEL

	// The private API (ane-anchor §1.2).
	modelWithMILText, inMemoryModelWithDescriptor, hexStringIdentifier objc.SEL
	compileWithQoS, loadWithQoS, evaluateWithQoS, unloadWithQoS        objc.SEL
	objectWithIOSurface, requestWithInputs                             objc.SEL
	model, modelAttributes, aneSubType, numANECores                    objc.SEL
}

// cls are the classes.
var cls struct {
	nsData, nsDictionary, nsArray, nsNumber, nsString objc.Class
	descriptor, inMemoryModel, request, surfaceObject objc.Class
	aneModel, deviceInfo                              objc.Class
}

// emptyOptions is the @{} passed as options to every call; created once and
// kept (alloc/init returns it retained). The reference passes @{}, and nil
// options are reported to fail (peers.md §4.1, mlx-go-ane).
var emptyOptions objc.ID

// ---- counted calls ----

func send(self objc.ID, s objc.SEL) objc.ID { fcalls.Add(1); return msg.id(self, s) }
func sendVoid(self objc.ID, s objc.SEL)     { fcalls.Add(1); msg.void(self, s) }
func sendU64(self objc.ID, s objc.SEL) uint64 {
	fcalls.Add(1)
	return msg.u64(self, s)
}

func sendI64(self objc.ID, s objc.SEL) int64 { fcalls.Add(1); return msg.i64(self, s) }

func sendID(self objc.ID, s objc.SEL, a objc.ID) objc.ID { fcalls.Add(1); return msg.idID(self, s, a) }

func classResponds(c objc.Class, s objc.SEL) bool {
	fcalls.Add(1)
	return msg.respond(objc.ID(c), sel.respondsToSelector, s)
}

func instancesRespond(c objc.Class, s objc.SEL) bool {
	fcalls.Add(1)
	return msg.respond(objc.ID(c), sel.instancesRespondToSelector, s)
}

func objResponds(o objc.ID, s objc.SEL) bool {
	fcalls.Add(1)
	return msg.respond(o, sel.respondsToSelector, s)
}

func isKind(o objc.ID, c objc.Class) bool {
	fcalls.Add(1)
	return msg.isKind(o, sel.isKindOfClass, c)
}

func retain(o objc.ID) objc.ID {
	if o == 0 {
		return 0
	}
	return send(o, sel.retain)
}

func release(o objc.ID) {
	if o != 0 {
		sendVoid(o, sel.release)
	}
}

func poolPush() uintptr { fcalls.Add(1); return cfn.poolPush() }
func poolPop(t uintptr) { fcalls.Add(1); cfn.poolPop(t) }

// ---- Foundation values (autoreleased: build them inside a pool) ----

// goString copies an NSString (or nil) to Go.
func goString(s objc.ID) string {
	if s == 0 {
		return ""
	}
	fcalls.Add(1)
	return msg.cstr(s, sel.utf8String)
}

// classMethodReturn classifies what the class method s of c returns, from
// the runtime's type encoding of the method (class_getClassMethod,
// method_getTypeEncoding). It is retUnknown when those functions are
// missing, the method is not found or it has no encoding: the caller then
// must not send the message, since objc_msgSend read under the wrong
// prototype can crash the process (an object expected, a char * or an
// integer returned).
func classMethodReturn(c objc.Class, s objc.SEL) (retKind, int) {
	if cfn.getClassMethod == nil || cfn.methodTypeEncoding == nil || c == 0 {
		return retUnknown, 0
	}
	fcalls.Add(1)
	m := cfn.getClassMethod(c, s)
	if m == 0 {
		return retUnknown, 0
	}
	fcalls.Add(1)
	return returnKind(cfn.methodTypeEncoding(m))
}

// classCString sends a class message that returns a char * (its encoding
// says so) and copies the string.
func classCString(c objc.Class, s objc.SEL) string {
	fcalls.Add(1)
	return msg.cstr(objc.ID(c), s)
}

// describe is -[o description] as a Go string.
func describe(o objc.ID) string {
	if o == 0 {
		return "nil"
	}
	return goString(send(o, sel.description))
}

func nsString(s string) objc.ID {
	fcalls.Add(1)
	return msg.idStr(objc.ID(cls.nsString), sel.stringWithUTF8String, s)
}

func nsNumber(v int64) objc.ID {
	fcalls.Add(1)
	return msg.idI64(objc.ID(cls.nsNumber), sel.numberWithLongLong, v)
}

// nsData copies b into an NSData (dataWithBytes:length: copies, so b need
// not outlive the call; go-ecosystem §1.5).
func nsData(b []byte) objc.ID {
	fcalls.Add(1)
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	d := msg.idBytes(objc.ID(cls.nsData), sel.dataWithBytesLength, p, uint64(len(b)))
	runtime.KeepAlive(b)
	return d
}

func nsArray(objs []objc.ID) objc.ID {
	fcalls.Add(1)
	var p *objc.ID
	if len(objs) > 0 {
		p = &objs[0]
	}
	return msg.idArr(objc.ID(cls.nsArray), sel.arrayWithObjects, p, uint64(len(objs)))
}

// nsDict builds an immutable dictionary; with no keys it is the empty
// dictionary, never nil (ane-anchor §8.11).
func nsDict(keys, vals []objc.ID) objc.ID {
	fcalls.Add(1)
	if len(keys) == 0 {
		return msg.id(objc.ID(cls.nsDictionary), sel.dictionary)
	}
	return msg.idDict(objc.ID(cls.nsDictionary), sel.dictionaryWithObjectsForKeysCount, &vals[0], &keys[0], uint64(len(keys)))
}

// nsTemporaryDirectory is NSTemporaryDirectory() as a Go string.
func nsTemporaryDirectory() string {
	fcalls.Add(1)
	return goString(cfn.tempDir())
}

// nsError turns a failed call's NSError into a Go error carrying its
// description (ane-anchor §1.6). what names the call.
func nsError(what string, e objc.ID) error {
	if e == 0 {
		return fmt.Errorf("%s failed without an NSError", what)
	}
	return fmt.Errorf("%s: %s", what, describe(e))
}

// toGo converts a property-list-like object tree to Go values:
// NSDictionary → map[string]any, NSArray → []any, NSNumber → int64,
// NSString → string, anything else → its description.
//
// Every dictionary's layout keys (layoutKeys) are fetched by name first, so
// they are never lost to the bound below whatever order allKeys returns.
// The other entries are copied too, up to maxEntries per dictionary or
// array and maxDepth levels: far above any attributes dictionary (tens of
// keys, one entry per model input or output), so in practice nothing is
// dropped, but a bound all the same, because each entry costs several
// foreign calls on the worker and the object tree comes from a private
// framework whose size nobody has documented.
func toGo(o objc.ID, depth int) any {
	const maxDepth, maxEntries = 6, 4096
	switch {
	case o == 0 || depth > maxDepth:
		return nil
	case isKind(o, cls.nsDictionary):
		m := map[string]any{}
		for _, k := range layoutKeys {
			if v := sendID(o, sel.objectForKey, nsString(k)); v != 0 {
				m[k] = toGo(v, depth+1)
			}
		}
		keys := send(o, sel.allKeys)
		n := min(sendU64(keys, sel.count), maxEntries)
		for i := range n {
			fcalls.Add(1)
			k := msg.idU64(keys, sel.objectAtIndex, i)
			name := describe(k)
			if _, done := m[name]; done {
				continue
			}
			m[name] = toGo(sendID(o, sel.objectForKey, k), depth+1)
		}
		return m
	case isKind(o, cls.nsArray):
		n := min(sendU64(o, sel.count), maxEntries)
		a := make([]any, n)
		for i := range n {
			fcalls.Add(1)
			a[i] = toGo(msg.idU64(o, sel.objectAtIndex, i), depth+1)
		}
		return a
	case isKind(o, cls.nsNumber):
		return sendI64(o, sel.longLongValue)
	case isKind(o, cls.nsString):
		return goString(o)
	}
	return describe(o)
}

// ---- loading ----

// loader records what it looks up, for the probe, and keeps the first
// failure of something required.
type loader struct {
	symbols []Symbol
	missing []string
}

func (l *loader) note(kind, name string, found, optional bool) bool {
	l.symbols = append(l.symbols, Symbol{Kind: kind, Name: name, Found: found, Optional: optional})
	if !found && !optional {
		l.missing = append(l.missing, name)
	}
	return found
}

func (l *loader) lib(path, name string) uintptr {
	fcalls.Add(1)
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		h = 0
	}
	l.note("library", name, h != 0, false)
	return h
}

// fn resolves a C function into fptr; a missing symbol is recorded, never a
// panic (purego.RegisterLibFunc would panic). A missing optional function
// leaves fptr nil, which its callers test before use.
func (l *loader) fn(lib uintptr, name string, fptr any, optional bool) bool {
	var addr uintptr
	if lib != 0 {
		fcalls.Add(1)
		addr, _ = purego.Dlsym(lib, name)
	}
	if !l.note("function", name, addr != 0, optional) {
		return false
	}
	purego.RegisterFunc(fptr, addr)
	return true
}

// constant reads a CFStringRef global: dlsym returns the variable's address,
// dereferenced once, in the form go vet accepts (go-ecosystem §1.6).
func (l *loader) constant(lib uintptr, name string) objc.ID {
	var addr uintptr
	if lib != 0 {
		fcalls.Add(1)
		addr, _ = purego.Dlsym(lib, name)
	}
	var v objc.ID
	if addr != 0 {
		v = **(**objc.ID)(unsafe.Pointer(&addr))
	}
	l.note("constant", name, v != 0, false)
	return v
}

func (l *loader) class(name string, optional bool) objc.Class {
	fcalls.Add(1)
	c := objc.GetClass(name)
	l.note("class", name, c != 0, optional)
	return c
}

// classSel guards a class method with respondsToSelector: before first use
// (go-ecosystem §1.1: an unknown selector raises an Objective-C exception,
// which aborts a Go process).
func (l *loader) classSel(c objc.Class, className, name string, optional bool) objc.SEL {
	s := selector(name)
	l.note("selector", "+["+className+" "+name+"]", c != 0 && classResponds(c, s), optional)
	return s
}

// instSel guards an instance method with instancesRespondToSelector:.
func (l *loader) instSel(c objc.Class, className, name string, optional bool) objc.SEL {
	s := selector(name)
	l.note("selector", "-["+className+" "+name+"]", c != 0 && instancesRespond(c, s), optional)
	return s
}

func selector(name string) objc.SEL {
	fcalls.Add(1)
	return objc.RegisterName(name)
}

// registerMsgSend registers objc_msgSend under every prototype in msg.
func registerMsgSend(libobjc uintptr) error {
	fcalls.Add(1)
	addr, err := purego.Dlsym(libobjc, "objc_msgSend")
	if err != nil || addr == 0 {
		return errors.New("objc_msgSend not found in libobjc")
	}
	for _, f := range []any{
		&msg.id, &msg.void, &msg.u64, &msg.i64, &msg.cstr, &msg.respond, &msg.isKind,
		&msg.idID, &msg.idPtr, &msg.idU64, &msg.idI64, &msg.idStr, &msg.idBytes, &msg.idArr,
		&msg.idDict, &msg.id3, &msg.id7, &msg.qosOpts, &msg.qosEval, &msg.qosErr,
	} {
		purego.RegisterFunc(f, addr)
	}
	return nil
}
