"""The ``taxi-pipeline`` command: parses arguments, checks the user's input, calls a runner, the server or the
reading layer, and maps errors to exit codes. The top of the house: it may import every other folder, and
nothing imports it. TensorFlow is imported only by the commands that need it, never for ``--help``.
"""
