"""Head importance (gradient of a head mask, Michel et al. 2019) and pruning curves."""
