"""The exit codes of ``taxi-pipeline``, as the README defines them."""

EXIT_OK = 0  # the run finished (blessed or not), or the command did what it was asked
EXIT_FAILED = 1  # a component failed, or a submitted job did
EXIT_USAGE = 2  # a mistake in the command, the config or the input: one line says what
EXIT_VALIDATION = 3  # the data failed validation; the run stopped at the gate, nothing was trained or pushed
EXIT_INTERRUPTED = 130  # Ctrl-C
