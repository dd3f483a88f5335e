"""The survey simulator and the small sample surveys it made, with their ground truth."""
