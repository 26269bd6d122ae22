//go:build !purego

#include "textflag.h"

// Constants of expSumAVX2: the scalars are broadcast, the vectors are
// memory operands of the FMAs (AVX2 has no embedded broadcast). The values
// are expSumGo's, as float32 bit patterns.
DATA expScalars<>+0(SB)/4, $0xc2aeac4f // lo
DATA expScalars<>+4(SB)/4, $0x42b17213 // hi
DATA expScalars<>+8(SB)/4, $0x3fb8aa3b // log2e
DATA expScalars<>+12(SB)/4, $0x4b400000 // magic
DATA expScalars<>+16(SB)/4, $0x3f318000 // ln2hi
DATA expScalars<>+20(SB)/4, $0xb95e8083 // ln2lo
GLOBL expScalars<>(SB), RODATA|NOPTR, $24

DATA exp_c0<>+0(SB)/4, $0x39506967
DATA exp_c0<>+4(SB)/4, $0x39506967
DATA exp_c0<>+8(SB)/4, $0x39506967
DATA exp_c0<>+12(SB)/4, $0x39506967
DATA exp_c0<>+16(SB)/4, $0x39506967
DATA exp_c0<>+20(SB)/4, $0x39506967
DATA exp_c0<>+24(SB)/4, $0x39506967
DATA exp_c0<>+28(SB)/4, $0x39506967
GLOBL exp_c0<>(SB), RODATA|NOPTR, $32

DATA exp_c1<>+0(SB)/4, $0x3ab743ce
DATA exp_c1<>+4(SB)/4, $0x3ab743ce
DATA exp_c1<>+8(SB)/4, $0x3ab743ce
DATA exp_c1<>+12(SB)/4, $0x3ab743ce
DATA exp_c1<>+16(SB)/4, $0x3ab743ce
DATA exp_c1<>+20(SB)/4, $0x3ab743ce
DATA exp_c1<>+24(SB)/4, $0x3ab743ce
DATA exp_c1<>+28(SB)/4, $0x3ab743ce
GLOBL exp_c1<>(SB), RODATA|NOPTR, $32

DATA exp_c2<>+0(SB)/4, $0x3c088908
DATA exp_c2<>+4(SB)/4, $0x3c088908
DATA exp_c2<>+8(SB)/4, $0x3c088908
DATA exp_c2<>+12(SB)/4, $0x3c088908
DATA exp_c2<>+16(SB)/4, $0x3c088908
DATA exp_c2<>+20(SB)/4, $0x3c088908
DATA exp_c2<>+24(SB)/4, $0x3c088908
DATA exp_c2<>+28(SB)/4, $0x3c088908
GLOBL exp_c2<>(SB), RODATA|NOPTR, $32

DATA exp_c3<>+0(SB)/4, $0x3d2aa9c1
DATA exp_c3<>+4(SB)/4, $0x3d2aa9c1
DATA exp_c3<>+8(SB)/4, $0x3d2aa9c1
DATA exp_c3<>+12(SB)/4, $0x3d2aa9c1
DATA exp_c3<>+16(SB)/4, $0x3d2aa9c1
DATA exp_c3<>+20(SB)/4, $0x3d2aa9c1
DATA exp_c3<>+24(SB)/4, $0x3d2aa9c1
DATA exp_c3<>+28(SB)/4, $0x3d2aa9c1
GLOBL exp_c3<>(SB), RODATA|NOPTR, $32

DATA exp_c4<>+0(SB)/4, $0x3e2aaaaa
DATA exp_c4<>+4(SB)/4, $0x3e2aaaaa
DATA exp_c4<>+8(SB)/4, $0x3e2aaaaa
DATA exp_c4<>+12(SB)/4, $0x3e2aaaaa
DATA exp_c4<>+16(SB)/4, $0x3e2aaaaa
DATA exp_c4<>+20(SB)/4, $0x3e2aaaaa
DATA exp_c4<>+24(SB)/4, $0x3e2aaaaa
DATA exp_c4<>+28(SB)/4, $0x3e2aaaaa
GLOBL exp_c4<>(SB), RODATA|NOPTR, $32

DATA exp_c5<>+0(SB)/4, $0x3f000000
DATA exp_c5<>+4(SB)/4, $0x3f000000
DATA exp_c5<>+8(SB)/4, $0x3f000000
DATA exp_c5<>+12(SB)/4, $0x3f000000
DATA exp_c5<>+16(SB)/4, $0x3f000000
DATA exp_c5<>+20(SB)/4, $0x3f000000
DATA exp_c5<>+24(SB)/4, $0x3f000000
DATA exp_c5<>+28(SB)/4, $0x3f000000
GLOBL exp_c5<>(SB), RODATA|NOPTR, $32

DATA exp_one<>+0(SB)/4, $0x3f800000
DATA exp_one<>+4(SB)/4, $0x3f800000
DATA exp_one<>+8(SB)/4, $0x3f800000
DATA exp_one<>+12(SB)/4, $0x3f800000
DATA exp_one<>+16(SB)/4, $0x3f800000
DATA exp_one<>+20(SB)/4, $0x3f800000
DATA exp_one<>+24(SB)/4, $0x3f800000
DATA exp_one<>+28(SB)/4, $0x3f800000
GLOBL exp_one<>(SB), RODATA|NOPTR, $32

DATA exp_inf<>+0(SB)/4, $0x7f800000
DATA exp_inf<>+4(SB)/4, $0x7f800000
DATA exp_inf<>+8(SB)/4, $0x7f800000
DATA exp_inf<>+12(SB)/4, $0x7f800000
DATA exp_inf<>+16(SB)/4, $0x7f800000
DATA exp_inf<>+20(SB)/4, $0x7f800000
DATA exp_inf<>+24(SB)/4, $0x7f800000
DATA exp_inf<>+28(SB)/4, $0x7f800000
GLOBL exp_inf<>(SB), RODATA|NOPTR, $32

DATA exp_bias<>+0(SB)/4, $0x0000007f
DATA exp_bias<>+4(SB)/4, $0x0000007f
DATA exp_bias<>+8(SB)/4, $0x0000007f
DATA exp_bias<>+12(SB)/4, $0x0000007f
DATA exp_bias<>+16(SB)/4, $0x0000007f
DATA exp_bias<>+20(SB)/4, $0x0000007f
DATA exp_bias<>+24(SB)/4, $0x0000007f
DATA exp_bias<>+28(SB)/4, $0x0000007f
GLOBL exp_bias<>(SB), RODATA|NOPTR, $32


// func expSumAVX2(row *float32, n int, shift float32) float64
//
// row[i] = e^(row[i]−shift) for i < n (n a positive multiple of 8), eight
// at a time, and the sum of the results in float64 (two accumulators of
// four lanes, added in a fixed order). The algorithm is expSumGo's, with
// FMAs; 2ⁿ is applied as 2^⌊n/2⌋·2^(n−⌊n/2⌋) so that n = −126 and n = 128
// need no special case.
TEXT ·expSumAVX2(SB), NOSPLIT, $0-32
	MOVQ         row+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS shift+16(FP), Y15
	VBROADCASTSS expScalars<>+0(SB), Y14  // lo
	VBROADCASTSS expScalars<>+4(SB), Y13  // hi
	VBROADCASTSS expScalars<>+8(SB), Y12  // log2e
	VBROADCASTSS expScalars<>+12(SB), Y11 // magic
	VBROADCASTSS expScalars<>+16(SB), Y10 // ln2hi
	VBROADCASTSS expScalars<>+20(SB), Y9  // ln2lo
	VXORPD       Y7, Y7, Y7
	VXORPD       Y8, Y8, Y8

exp_loop:
	VMOVUPS      (DI), Y0
	VSUBPS       Y15, Y0, Y0           // x = z − shift
	VMAXPS       Y14, Y0, Y1           // xc = max(x, lo); NaN gives lo
	VMINPS       Y13, Y1, Y1           // xc = min(xc, hi)
	VMOVAPS      Y11, Y2
	VFMADD231PS  Y12, Y1, Y2           // t = xc·log2e + magic
	VSUBPS       Y11, Y2, Y3           // n = t − magic, as a float
	VMOVAPS      Y1, Y4
	VFNMADD231PS Y10, Y3, Y4           // r = xc − n·ln2hi
	VFNMADD231PS Y9, Y3, Y4            // r −= n·ln2lo
	VMOVUPS      exp_c0<>(SB), Y5
	VFMADD213PS  exp_c1<>(SB), Y4, Y5  // p = p·r + c
	VFMADD213PS  exp_c2<>(SB), Y4, Y5
	VFMADD213PS  exp_c3<>(SB), Y4, Y5
	VFMADD213PS  exp_c4<>(SB), Y4, Y5
	VFMADD213PS  exp_c5<>(SB), Y4, Y5
	VMULPS       Y4, Y4, Y6            // r²
	VFMADD213PS  Y4, Y6, Y5            // p = p·r² + r
	VADDPS       exp_one<>(SB), Y5, Y5 // eʳ = p + 1
	VPSUBD       Y11, Y2, Y3           // n = bits(t) − bits(magic)
	VPSRAD       $1, Y3, Y6            // n1 = n >> 1
	VPSUBD       Y6, Y3, Y3            // n2 = n − n1
	VPADDD       exp_bias<>(SB), Y6, Y6
	VPADDD       exp_bias<>(SB), Y3, Y3
	VPSLLD       $23, Y6, Y6           // 2^n1
	VPSLLD       $23, Y3, Y3           // 2^n2
	VMULPS       Y6, Y5, Y5
	VMULPS       Y3, Y5, Y5
	VCMPPS       $0x11, Y14, Y0, Y6    // x < lo (LT_OQ): 0
	VANDNPS      Y5, Y6, Y5
	VCMPPS       $0x1e, Y13, Y0, Y6    // x > hi (GT_OQ): +Inf
	VBLENDVPS    Y6, exp_inf<>(SB), Y5, Y5
	VCMPPS       $3, Y0, Y0, Y6        // x is NaN: NaN
	VBLENDVPS    Y6, Y0, Y5, Y5
	VMOVUPS      Y5, (DI)
	VCVTPS2PD    X5, Y6                // the sum, in float64
	VADDPD       Y6, Y7, Y7
	VEXTRACTF128 $1, Y5, X6
	VCVTPS2PD    X6, Y6
	VADDPD       Y6, Y8, Y8
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          exp_loop

	VADDPD       Y8, Y7, Y7
	VEXTRACTF128 $1, Y7, X8
	VADDPD       X8, X7, X7
	VPERMILPD    $1, X7, X8
	VADDSD       X8, X7, X7
	VZEROUPPER
	MOVSD        X7, ret+24(FP)
	RET

// func maxAVX2(row *float32, n int) float32
//
// The largest of row[:n], n a positive multiple of 8. A NaN is skipped
// (VMAXPS returns its second operand, here the running maximum, when
// either is NaN) unless it is row[0], like rowMaxGo's comparisons.
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ         row+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS (DI), Y0

max_loop:
	VMOVUPS      (DI), Y1
	VMAXPS       Y0, Y1, Y0 // max(data, running): the running one on NaN
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          max_loop

	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+16(FP)
	RET
