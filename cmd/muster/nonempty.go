package main

import (
	"fmt"
	"strings"
)

// nonEmpty is a string flag that may not be given empty. A flag given as
// --token "$KEY", or --target "$T", with the variable unset, would
// otherwise read as a flag left out, and the command would act with the
// key (or reach the master) the environment names, or on every target,
// not on what was meant.
type nonEmpty struct {
	p     *string
	give  string // what to give instead, such as "a value"
	unset string // what the command does with the flag left out
}

func (v nonEmpty) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v nonEmpty) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return emptyFlag(v.give, v.unset)
	}
	*v.p = s
	return nil
}

func (v nonEmpty) Type() string { return "string" }

// nonEmptyList is a repeatable flag of names, each given once or several
// at a time separated by commas, none of which may be empty: a name left
// empty would leave the list empty, which means all (see nonEmpty).
type nonEmptyList struct {
	p     *[]string
	give  string
	unset string
}

func (v nonEmptyList) String() string {
	if v.p == nil || len(*v.p) == 0 {
		return "" // no default to show
	}
	return "[" + strings.Join(*v.p, ",") + "]"
}

func (v nonEmptyList) Set(s string) error {
	names := strings.Split(s, ",")
	for _, n := range names {
		if strings.TrimSpace(n) == "" {
			return emptyFlag(v.give, v.unset)
		}
	}
	*v.p = append(*v.p, names...)
	return nil
}

func (v nonEmptyList) Type() string { return "strings" }

// emptyFlag is the error of a flag given empty.
func emptyFlag(give, unset string) error {
	return fmt.Errorf("empty; give %s, or leave the flag out to %s", give, unset)
}
