// Package proc reads what dspgo needs to know of processes from Linux's
// /proc: resident memory, start time, parent.
package proc

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RSS returns a process's resident memory in bytes (VmRSS), or 0 when it
// cannot be read.
func RSS(pid int) uint64 {
	rss, _ := Status(pid)
	return rss
}

// Status returns a process's resident memory in bytes (VmRSS) and its
// number of threads, read from /proc/<pid>/status (cheap however many
// threads the process has); zeros when it cannot be read.
func Status(pid int) (rss uint64, threads int) {
	if pid <= 0 {
		return 0, 0
	}
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		key, value, _ := strings.Cut(line, ":")
		value = strings.TrimSpace(value)
		switch key {
		case "VmRSS":
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(value, "kB")), 10, 64)
			rss = kb << 10
		case "Threads":
			threads, _ = strconv.Atoi(value)
		}
	}
	return rss, threads
}

// Stat returns the fields of /proc/<pid>/stat after the command name:
// fields[0] is the state, fields[1] the parent's pid, fields[19] the start
// time in clock ticks since boot; and the command name.
func Stat(pid int) (fields []string, comm string, err error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, "", err
	}
	open, closing := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || closing < open {
		return nil, "", errors.New("proc: malformed stat")
	}
	fields = strings.Fields(string(data[closing+1:]))
	if len(fields) < 20 {
		return nil, "", errors.New("proc: short stat")
	}
	return fields, string(data[open+1 : closing]), nil
}

// StartTime returns a process's start time in clock ticks since boot:
// with the pid, it tells a process from a later one that reused the pid.
func StartTime(pid int) (uint64, error) {
	fields, _, err := Stat(pid)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(fields[19], 10, 64)
}
