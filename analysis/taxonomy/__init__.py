"""The head taxonomy of the long-context and sink literature (run kind ``taxonomy``)."""
