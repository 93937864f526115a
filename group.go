package muster

// Group is a named set of targets (SQL Server's target server group). Its
// name follows ValidateName, so it holds no commas, as SQL Server requires.
type Group struct {
	Name    string   `json:"name"`
	Targets []string `json:"targets"`
	Jobs    []string `json:"jobs"` // the jobs that name the group
}
