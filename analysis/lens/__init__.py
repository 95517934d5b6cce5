"""Attention lenses: what each head's output says about the next token (Attention Lens,
Sakarvadia et al. 2023).

- ``activations``: one cached pass over a set of sequences, kept at their real positions: each
  head's ``z``, its OV-lens input (the attention-weighted token embeddings through ``W_V``), the
  final norm's scale per position, the mean ``ln1`` scale per layer and the model's own
  next-token log-probabilities.
- ``decode``: the two LayerNorm treatments (``apply_ln_to_stack``'s cached scale, and a fresh
  final norm), KL to the model's distribution, top-k.
- ``ov``: the OV–unembed lens ``embed(s) · W_V W_O · W_U`` per head (full source × target for
  a small vocabulary, the prompt set's tokens otherwise, in bounded chunks).
- ``logit_lens``: the head logit lens per position (the head's direct logit attribution to
  every token).
- ``trained``: an optional linear lens per head, trained to the model's next-token
  distribution, saved as safetensors.

Weights are TransformerLens-processed (compatibility mode: norm weights folded into the
following matrices, writing weights and the unembedding centred), so a norm is its centring
(LayerNorm only) and a division by a scale.
"""
