package contract

import (
	"fmt"
	"strings"
)

// ParseBool reads a boolean environment variable (DEFENDERS_LOCKDOWN): the
// one spelling every Lambda accepts. "true" or "false" in any case, with
// surrounding spaces ignored, and "" (unset) for false. Anything else
// ("1", "yes", "t", a typo) is an error that names the variable rather
// than a guess: a mistyped "true" must fail the start, not run the function
// unlocked. The constructs write "true".
func ParseBool(name, v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true, nil
	case "", "false":
		return false, nil
	}
	return false, fmt.Errorf("%s=%q: want true or false", name, v)
}
