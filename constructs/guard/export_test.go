package guard

import "io"

// SetOutput makes Synth print to w and returns a function that restores the previous output.
func SetOutput(w io.Writer) (restore func()) {
	prev := output
	output = w
	return func() { output = prev }
}
