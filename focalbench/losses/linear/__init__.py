"""The fused linear focal loss: the softmax focal loss of ``hidden @ weight.T + bias``, a chunk of rows at a time."""
