"""Everything that touches a model: loading, prompt sets, head analyses, circuits, SAEs, worker."""

import os

# PyTorch backs its large CPU tensors with transparent huge pages only when this is set before
# its first allocation (it is read once). Circuit scoring allocates many short-lived tensors of
# 10-100 MB; with 4 KiB pages about a tenth of EAP-IG's time went to page faults
# (docs/circuits.md). Importing ``analysis`` before torch sets it; an explicit value wins.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
