//go:build !race

package review

// raceDetector is true when the tests run under the race detector, which slows them about tenfold.
const raceDetector = false
