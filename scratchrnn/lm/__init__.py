"""The language-model tool: config, corpora and vocabulary, the training run, checkpoints, run
folders and their lock, sampling."""
