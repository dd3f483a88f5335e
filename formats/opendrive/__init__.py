"""OpenDRIVE (ASAM OpenDRIVE 1.1-1.8) import and 1.7/1.8 export of the canonical map model.

>>> from formats.opendrive import read_opendrive, write_opendrive
"""

from formats.opendrive.reader import load_network, read_opendrive
from formats.opendrive.writer import write_opendrive

__all__ = ["load_network", "read_opendrive", "write_opendrive"]
