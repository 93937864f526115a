package testenv

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// RunProcesses returns the live processes whose environment names the run
// (every step process carries MUSTER_RUN_ID), zombies left out.
func RunProcesses(runID string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, []byte("MUSTER_RUN_ID="+runID+"\x00")) {
			if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && !isZombie(st) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func isZombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
