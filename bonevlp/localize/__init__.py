"""Annotation-free localization: AFLoc similarity maps, LRCLR region selection, and their scores against boxes."""
