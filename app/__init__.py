"""The Dash web app and the ``headlab`` command line. Never imports torch at module level."""
