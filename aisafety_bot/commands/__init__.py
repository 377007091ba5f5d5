"""The commands, in groups. Every handler has one signature: `cmd_x(ctx: Context, args) -> int`, the exit
status; a mistake on the command line is a `UsageError`, bad settings a `ConfigError`."""
