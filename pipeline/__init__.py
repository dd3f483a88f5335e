"""Survey reading, the canonical map model and the extraction stages.

Everything here is a plain function on numpy arrays, Open3D clouds or shapely geometries;
nothing imports Prefect. Units are metres in the projected CRS the survey or model names.
"""
