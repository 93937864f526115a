//go:build !linux

package metrics

// ProcessCollector adds nothing where there is no /proc to read.
func ProcessCollector() Collector { return processCollector{} }

type processCollector struct{}

func (processCollector) Describe() []*Desc { return nil }
func (processCollector) Collect(*Scrape)   {}
