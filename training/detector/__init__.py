"""Training the learned damage detector: synthetic damage, data, model, training, export (README.md)."""
