// Package mil is anetop's toolkit for Core ML's Model Intermediate Language: the
// kernel language of the Apple Neural Engine. It holds the typed program model
// (dtypes, shapes, SSA variables, operations), a builder that infers and checks
// types as kernels are written, a printer of the exact text the ANE compiler
// takes, a parser of that text, and the weight-blob file format.
//
// The same printed text is compiled by Apple's compiler on a Mac and parsed and
// run by anetop's emulator everywhere else, so a kernel is defined once.
package mil
