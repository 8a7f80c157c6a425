package main

import (
	"os"
	"syscall"
)

// execQuietSysmon re-executes the process with quietSysmon in GODEBUG
// (see sysmon.go). It returns only if that is not needed or fails; then
// the process simply runs with the runtime's default.
func execQuietSysmon() {
	env := quietSysmonEnv(os.Args[1:], os.Environ())
	if env == nil {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	syscall.Exec(exe, os.Args, env)
}
