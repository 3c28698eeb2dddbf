// Package lograte keeps hot-path warnings from flooding the log: a counter
// of events is logged when it reaches 1, 2, 4, 8, … so a steady stream of
// the same trouble costs a logarithmic number of lines, each with the total.
package lograte

import "math/bits"

// Crossed reports whether a counter that went from before to after passed
// a power of two (after > before).
func Crossed(before, after uint64) bool {
	return bits.Len64(after) > bits.Len64(before)
}
