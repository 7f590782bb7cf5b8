"""One run: training (one Trainer set-up for every strategy), the frozen-layer cache, checkpoints and
resume, the saved artifact, evaluation, and the run record."""
