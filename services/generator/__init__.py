"""Generator: conditioned restoration, one candidate per seed."""
