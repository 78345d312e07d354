"""Lightning pieces: the LM module (loss, metrics, optimizer) and training callbacks."""
