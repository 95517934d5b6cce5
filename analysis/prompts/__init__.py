"""Prompt sets: clean/corrupted pairs with a correct and an incorrect answer token.

- ``files``: reading and writing CSV / JSONL prompt files (torch-free).
- ``validate``: checking pairs against a model's tokenizer and context (errors name the row).
- ``generators``: task generators (induction, ioi, greater-than) that produce valid pairs.
"""
