//go:build darwin

package ane

import (
	"fmt"
	"unsafe"

	"github.com/ebitengine/purego/objc"
)

// kIOSurfaceLockReadOnly is the lock option for reading outputs; 0 locks for
// writing (ane-anchor §1.5, go-ecosystem §1.6).
const kIOSurfaceLockReadOnly = 1

// newSurface creates an IOSurface as the reference does: one row of raw
// bytes, width = bytes-per-row = alloc size = bytes, height 1, one byte per
// element, pixel format 0 (ane-anchor §1.5). The properties go in as an
// NSDictionary of NSNumbers keyed by the kIOSurface* constants, which is
// toll-free bridged to the CFDictionary IOSurfaceCreate takes and costs
// fewer calls than building a CFDictionary (go-ecosystem §1.6). It runs on
// the worker, inside a pool that drains the dictionary.
func (r *darwinRT) newSurface(bytes int) (surfaceRef, []byte, error) {
	if bytes <= 0 {
		return 0, nil, fmt.Errorf("IOSurface of %d bytes", bytes)
	}
	n := int64(bytes)
	vals := []objc.ID{nsNumber(n), nsNumber(1), nsNumber(1), nsNumber(n), nsNumber(n), nsNumber(0)}
	props := nsDict(cfn.surfacePropertyNames[:], vals)
	fcalls.Add(1)
	s := cfn.surfaceCreate(props)
	if s == 0 {
		return 0, nil, fmt.Errorf("IOSurfaceCreate returned NULL for %d bytes", bytes)
	}
	fcalls.Add(2)
	base, size := cfn.surfaceBaseAddress(s), cfn.surfaceGetAllocSize(s)
	if base == nil || size < uint64(bytes) {
		fcalls.Add(1)
		cfn.cfRelease(s)
		return 0, nil, fmt.Errorf("IOSurface of %d bytes has base %p and allocation %d", bytes, base, size)
	}
	// The base address is taken once: the surface's memory is mapped at
	// creation and stays mapped until it is released, and the Surface keeps
	// one slice over it; the CPU may touch it only between Lock and Unlock.
	return surfaceRef(s), unsafe.Slice((*byte)(base), bytes), nil
}

func (r *darwinRT) freeSurface(s surfaceRef) {
	fcalls.Add(1)
	cfn.cfRelease(uintptr(s))
}

func lockOptions(readOnly bool) uint32 {
	if readOnly {
		return kIOSurfaceLockReadOnly
	}
	return 0
}

// lockSurface is IOSurfaceLock(s, options, NULL), a plain C call safe on any
// thread.
func (r *darwinRT) lockSurface(s surfaceRef, readOnly bool) error {
	fcalls.Add(1)
	if kr := cfn.surfaceLock(uintptr(s), lockOptions(readOnly), nil); kr != 0 {
		return fmt.Errorf("IOSurfaceLock: kern_return_t %#x", uint32(kr))
	}
	return nil
}

// baseAddress is IOSurfaceGetBaseAddress, a plain C call safe on any thread;
// the address is only compared, never used to reach memory.
func (r *darwinRT) baseAddress(s surfaceRef) uintptr {
	fcalls.Add(1)
	return uintptr(cfn.surfaceBaseAddress(uintptr(s)))
}

// unlockSurface is IOSurfaceUnlock with the lock's own options.
func (r *darwinRT) unlockSurface(s surfaceRef, readOnly bool) error {
	fcalls.Add(1)
	if kr := cfn.surfaceUnlock(uintptr(s), lockOptions(readOnly), nil); kr != 0 {
		return fmt.Errorf("IOSurfaceUnlock: kern_return_t %#x", uint32(kr))
	}
	return nil
}
