"""Durable result store: SQLAlchemy 2 over SQLite (default) or PostgreSQL.

This package imports nothing from the rest of headlab and never imports torch.
"""
