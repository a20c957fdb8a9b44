"""Training: targets (anchor matching, hard negatives) and the SSD multibox loss."""
