"""The floor of the house: error types, atomic writes, stop signals, downloads, hardware
probes, input normalisation. Imports nothing else from the package."""
