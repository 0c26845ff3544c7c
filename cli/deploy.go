package cli

// deployCommands are the operator's commands for installing and keeping a
// server: version, health check, backup and restore. commands() merges
// them in (kept apart so the command table can be restructured freely).
func deployCommands() map[string]command {
	return map[string]command{
		"version":     {summary: "print the version and build information (also --version)", run: runVersion},
		"healthcheck": {summary: "exit 0 when the local server answers /readyz (for container health checks)", run: runHealthcheck},
		"backup":      {summary: "copy the SQLite store of a running server: backup --to FILE", run: runBackup},
		"restore":     {summary: "put a backup into a data directory: restore --from FILE --data DIR", run: runRestore},
	}
}
