// Package agent is the certvault node agent, the static binary that runs
// on each machine: its enrollment with a vault, the watch loop that
// follows the certificates it is given, the installer that puts them on
// disk and the hooks that reload services. Only the enrollment exists so
// far, in package enroll.
package agent
