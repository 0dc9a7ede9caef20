"""Canary releases: the challenger serves a growing slice until it is promoted or rolled back."""
