"""The bottom layer: errors, the native model format, shipped-model registry, seeds, device and precision, atomic
writes and image I/O. Imports nothing else from stylebridge."""
