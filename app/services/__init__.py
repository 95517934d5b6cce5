"""Torch-free services of the web app: reads and composes over the store, launch, auth."""
