"""From scenes to a map.

The grid, patches and tiles, batched inference, chunks (streaming, resume, Dask), the map
pipeline and the real-scene checks of a map.
"""
