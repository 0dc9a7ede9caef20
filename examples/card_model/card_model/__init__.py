"""A fraud team's own model, served and retrained by driftloop (see ../README.md)."""
