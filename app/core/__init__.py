"""The numeric engine: pure functions on numpy arrays (torch where it pays).

Nothing here imports the web, database or worker layers; the package is usable as a library.
"""
