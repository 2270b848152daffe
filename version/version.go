// Package version reports what build of castle-destination is running.
package version

import (
	"runtime"
	"runtime/debug"
)

// Set at build time with -ldflags "-X .../version.Version=v1.2.3 -X .../version.Commit=abc123".
var (
	Version = "dev"
	Commit  = ""
)

// Info describes the running build.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
}

// Get returns the build information, filling the commit from the Go build
// info when the linker did not set it.
func Get() Info {
	info := Info{Version: Version, Commit: Commit, GoVersion: runtime.Version()}
	if info.Commit == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					info.Commit = s.Value
				}
			}
		}
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	return info
}
