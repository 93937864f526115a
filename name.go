package muster

import (
	"regexp"
	"strings"
)

// MaxNameLen is the longest job, step, schedule, target or group name.
const MaxNameLen = 128

var (
	// Target names are host-like: lower case letters, digits, dot, dash and
	// underscore, starting and ending with a letter or digit.
	targetNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$`)
	// Job, step and schedule names may also hold upper case letters.
	objectNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
)

// NormalizeTargetName lower-cases and trims a target name. Target names are
// compared without regard to case, as host names are.
func NormalizeTargetName(name string) string {
	return strings.ToLower(strings.TrimSpace(name))
}

// ValidateTargetName reports whether name (already normalized) is a valid
// target name. field names the input in the error, e.g. "--name".
func ValidateTargetName(field, name string) error {
	switch {
	case name == "":
		return Errorf(EINVALID, "%s: a target name is required", field)
	case len(name) > MaxNameLen:
		return Errorf(EINVALID, "%s: target name %q is longer than %d characters", field, name, MaxNameLen)
	case !targetNameRE.MatchString(name):
		return Errorf(EINVALID, "%s: target name %q may hold only letters, digits, '.', '-' and '_', and must start and end with a letter or digit", field, name)
	}
	return nil
}

// validObjectName reports the rule a job, step or schedule name breaks, or "".
func validObjectName(name string) string {
	switch {
	case name == "":
		return "a name is required"
	case len(name) > MaxNameLen:
		return "a name is at most 128 characters"
	case !objectNameRE.MatchString(name):
		return "a name may hold only letters, digits, '.', '-' and '_', and must start and end with a letter or digit"
	}
	return ""
}

// ValidateName checks a job, step, schedule, group, connection or proxy
// name: letters, digits, '.', '-' and '_', starting and ending with a letter
// or digit. field names the input in the error.
func ValidateName(field, name string) error {
	if msg := validObjectName(name); msg != "" {
		return Errorf(EINVALID, "%s: %q: %s", field, name, msg)
	}
	return nil
}
