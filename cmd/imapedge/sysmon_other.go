//go:build !linux

package main

// execQuietSysmon does nothing here: the re-exec is only done (and was
// only measured) on Linux.
func execQuietSysmon() {}
