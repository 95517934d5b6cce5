"""Everything that touches a model: loading, prompt sets, head analyses, circuits, SAEs, worker."""
