"""The command lines (`uad` verbs) and what only they do: predict, convert, cross-validation, exit codes."""
