"""The survey simulator: simulated road scenes with exact ground truth, and their scanner."""

from data_samples.simulator.changes import apply_changes
from data_samples.simulator.orthophoto import OrthoResult, render_ortho
from data_samples.simulator.scanner import ScannerParams, ScanResult, scan_scene
from data_samples.simulator.scenes import KINDS, build_scene
from data_samples.simulator.simulate import SimulationResult, simulate

__all__ = ["KINDS", "apply_changes", "build_scene"]
__all__ += ["OrthoResult", "ScanResult", "ScannerParams", "SimulationResult", "render_ortho"]
__all__ += ["scan_scene", "simulate"]
