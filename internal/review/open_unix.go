//go:build unix

package review

import "syscall"

// openNonblock makes opening a FIFO return at once instead of waiting for a
// writer, should one replace a template between the type check and the open.
const openNonblock = syscall.O_NONBLOCK
