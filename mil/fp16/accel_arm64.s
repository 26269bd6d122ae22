//go:build !purego

#include "textflag.h"

// Go's arm64 assembler has no mnemonics for the vector FCVTN/FCVTN2 and
// FCVTL/FCVTL2 (Advanced SIMD "two-register misc") instructions, so they are
// emitted as WORDs. The encodings (ARM ARM C7.2, single <-> half, sz = 0):
//
//	FCVTN  Vd.4H, Vn.4S   0x0E216800 | Rn<<5 | Rd
//	FCVTN2 Vd.8H, Vn.4S   0x4E216800 | Rn<<5 | Rd   (writes the upper half)
//	FCVTL  Vd.4S, Vn.4H   0x0E217800 | Rn<<5 | Rd
//	FCVTL2 Vd.4S, Vn.8H   0x4E217800 | Rn<<5 | Rd   (reads the upper half)
//
// i.e. 0 Q 0 01110 0 sz 10000 1011x 10 Rn Rd, with x = 0 for FCVTN and 1 for
// FCVTL and Q selecting the "2" (upper-half) form. Each WORD below carries
// the instruction it encodes in a comment; they were checked against an
// assembler (llvm-mc -triple=aarch64 -show-encoding) and against Go's own
// disassembler (go tool objdump shows them as VFCVTN/VFCVTN2/VFCVTL/VFCVTL2,
// though the Go 1.26 assembler does not accept those names). FCVTN rounds
// with FPCR.RMode, which Go leaves at round to nearest even.
//
// All kernels take n, a positive multiple of 8, and convert 16 elements per
// iteration, then at most one block of 8.

// func f32ToF16NEON(dst *Bits, src *float32, n int)
TEXT ·f32ToF16NEON(SB), NOSPLIT, $0-24
	MOVD dst+0(FP), R0
	MOVD src+8(FP), R1
	MOVD n+16(FP), R2
	CMP  $16, R2
	BLT  f32tof16_8

f32tof16_16:
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	WORD   $0x0E216804	// FCVTN  V4.4H, V0.4S
	WORD   $0x4E216824	// FCVTN2 V4.8H, V1.4S
	WORD   $0x0E216845	// FCVTN  V5.4H, V2.4S
	WORD   $0x4E216865	// FCVTN2 V5.8H, V3.4S
	VST1.P [V4.H8, V5.H8], 32(R0)
	SUB    $16, R2
	CMP    $16, R2
	BGE    f32tof16_16

f32tof16_8:
	CBZ    R2, f32tof16_done
	VLD1   (R1), [V0.S4, V1.S4]
	WORD   $0x0E216804	// FCVTN  V4.4H, V0.4S
	WORD   $0x4E216824	// FCVTN2 V4.8H, V1.4S
	VST1   [V4.H8], (R0)

f32tof16_done:
	RET

// func f16ToF32NEON(dst *float32, src *Bits, n int)
TEXT ·f16ToF32NEON(SB), NOSPLIT, $0-24
	MOVD dst+0(FP), R0
	MOVD src+8(FP), R1
	MOVD n+16(FP), R2
	CMP  $16, R2
	BLT  f16tof32_8

f16tof32_16:
	VLD1.P 32(R1), [V0.H8, V1.H8]
	WORD   $0x0E217802	// FCVTL  V2.4S, V0.4H
	WORD   $0x4E217803	// FCVTL2 V3.4S, V0.8H
	WORD   $0x0E217824	// FCVTL  V4.4S, V1.4H
	WORD   $0x4E217825	// FCVTL2 V5.4S, V1.8H
	VST1.P [V2.S4, V3.S4, V4.S4, V5.S4], 64(R0)
	SUB    $16, R2
	CMP    $16, R2
	BGE    f16tof32_16

f16tof32_8:
	CBZ  R2, f16tof32_done
	VLD1 (R1), [V0.H8]
	WORD $0x0E217802	// FCVTL  V2.4S, V0.4H
	WORD $0x4E217803	// FCVTL2 V3.4S, V0.8H
	VST1 [V2.S4, V3.S4], (R0)

f16tof32_done:
	RET

// func roundF32NEON(dst, src *float32, n int)
TEXT ·roundF32NEON(SB), NOSPLIT, $0-24
	MOVD dst+0(FP), R0
	MOVD src+8(FP), R1
	MOVD n+16(FP), R2
	CMP  $16, R2
	BLT  round_8

round_16:
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	WORD   $0x0E216804	// FCVTN  V4.4H, V0.4S
	WORD   $0x4E216824	// FCVTN2 V4.8H, V1.4S
	WORD   $0x0E216845	// FCVTN  V5.4H, V2.4S
	WORD   $0x4E216865	// FCVTN2 V5.8H, V3.4S
	WORD   $0x0E217880	// FCVTL  V0.4S, V4.4H
	WORD   $0x4E217881	// FCVTL2 V1.4S, V4.8H
	WORD   $0x0E2178A2	// FCVTL  V2.4S, V5.4H
	WORD   $0x4E2178A3	// FCVTL2 V3.4S, V5.8H
	VST1.P [V0.S4, V1.S4, V2.S4, V3.S4], 64(R0)
	SUB    $16, R2
	CMP    $16, R2
	BGE    round_16

round_8:
	CBZ  R2, round_done
	VLD1 (R1), [V0.S4, V1.S4]
	WORD $0x0E216804	// FCVTN  V4.4H, V0.4S
	WORD $0x4E216824	// FCVTN2 V4.8H, V1.4S
	WORD $0x0E217880	// FCVTL  V0.4S, V4.4H
	WORD $0x4E217881	// FCVTL2 V1.4S, V4.8H
	VST1 [V0.S4, V1.S4], (R0)

round_done:
	RET
