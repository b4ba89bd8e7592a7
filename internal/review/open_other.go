//go:build !unix

package review

// openNonblock is 0 where there are no FIFOs to guard against opening.
const openNonblock = 0
