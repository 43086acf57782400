"""What every command shares: compose and check the config (preflight, overrides, validation),
run one stage (``run``), exit codes, the end-of-run summary. The only code that reads the config."""
