"""One run: build the parts, claim the run folder, train and evaluate, write results and checkpoints."""
