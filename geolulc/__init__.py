"""geolulc: land-cover maps from Sentinel-2 imagery."""

__version__ = "0.1.0"
